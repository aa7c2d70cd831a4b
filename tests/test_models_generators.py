"""Generators: shapes, ranges, dtypes, names, and reproducible N(0, 0.02) initialisation."""

import keras
import numpy as np
import pytest

from monet_tf.models import build_generator, generator_multiple


def _images(size, batch=2, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (batch, size, size, 3)).astype("float32")


@pytest.mark.parametrize(
    "name,size,kwargs",
    [
        ("resnet_6blocks", 32, {}),
        ("resnet_9blocks", 36, {"upsample": "resize", "dropout": 0.5}),
        ("resnet_6blocks", 36, {"upsample": "subpixel", "norm": "one_pass",
                                "reflect_padding": "gather"}),
        ("unet_128", 128, {"dropout": 0.5, "norm": "one_pass"}),
        ("unet_256", 256, {"ngf": 2}),
    ],
)
def test_output_shape_range_dtype(name, size, kwargs):
    kwargs = {"ngf": 4, **kwargs}
    model = build_generator(name, **kwargs, seed=1)
    out = model(_images(size), training=True)
    assert tuple(out.shape) == (2, size, size, 3)
    assert out.dtype == "float32"
    out = np.asarray(out)
    assert np.all(out >= -1) and np.all(out <= 1)
    assert out.std() > 1e-3  # not collapsed to a constant


def test_resnet_accepts_any_multiple_of_four():
    model = build_generator("resnet_6blocks", ngf=4)
    for size in (32, 44):
        assert model(_images(size, batch=1)).shape == (1, size, size, 3)


def test_multiples_and_bad_names():
    assert generator_multiple("resnet_9blocks") == 4
    assert generator_multiple("unet_256") == 256
    assert generator_multiple("unet_128") == 128
    with pytest.raises(ValueError, match="unknown generator 'resnet_7'"):
        build_generator("resnet_7")
    with pytest.raises(ValueError, match="unet_128 needs 128x128"):
        build_generator("unet_128", image_size=64)
    with pytest.raises(ValueError, match="upsample"):
        build_generator("resnet_6blocks", upsample="bilinear")


@pytest.mark.parametrize("blocks", [1, 2, 6, 12])
def test_resnet_depth_is_in_the_name(blocks):
    model = build_generator(f"resnet_{blocks}blocks", ngf=4)
    residual = [layer.name for layer in model.layers if layer.name.startswith("block_")]
    assert residual == [f"block_{i}" for i in range(1, blocks + 1)]
    for bad in ("resnet_0blocks", "resnet_blocks", "resnet_02blocks"):
        with pytest.raises(ValueError, match=f"unknown generator '{bad}'.*resnet_<n>blocks"):
            build_generator(bad)


def test_reference_structure_and_init():
    model = build_generator("resnet_9blocks", ngf=8, seed=3)
    conv_types = (keras.layers.Conv2D, keras.layers.Conv2DTranspose)
    convs = [layer for layer in model.layers if isinstance(layer, conv_types)]
    # c7s1-ngf, d2ngf, d4ngf, 9 residual blocks of two convs, u2ngf, ungf, c7s1-3
    assert len(convs) == 1 + 2 + 18 + 2 + 1
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.GroupNormalization)]
    assert norms and all(n.epsilon == 1e-5 and not n.center and not n.scale for n in norms)
    kernels = np.concatenate([np.ravel(c.kernel.numpy()) for c in convs])
    assert abs(kernels.std() - 0.02) < 0.002 and abs(kernels.mean()) < 0.002
    again = build_generator("resnet_9blocks", ngf=8, seed=3)
    np.testing.assert_array_equal(model.get_weights()[0], again.get_weights()[0])
    # Same-shaped layers must not start identical.
    same_shape = [c.kernel.numpy() for c in convs if c.kernel.shape == (3, 3, 32, 32)]
    assert not np.allclose(same_shape[0], same_shape[1])


def test_float32_output_under_mixed_precision():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = build_generator("resnet_6blocks", ngf=4)
        out = model(_images(32, batch=1))
    finally:
        keras.config.set_dtype_policy("float32")
    assert out.dtype == "float32"
