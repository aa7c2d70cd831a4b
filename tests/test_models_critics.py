"""PatchGAN critic: receptive field measured from input gradients, shapes, noise, spectral norm."""

import numpy as np
import pytest
import tensorflow as tf

from monet_tf.models import build_critic


def _receptive_field(n_layers, size=128):
    critic = build_critic(ndf=4, n_layers=n_layers, norm="none", seed=0)
    x = tf.random.stateless_uniform((1, size, size, 3), (1, 2), -1, 1)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = critic(x)
        c = out.shape[1] // 2
        y = out[0, c, c, 0]
    grad = np.abs(tape.gradient(y, x).numpy()[0]).sum(axis=-1)
    rows, cols = np.nonzero(grad.sum(axis=1))[0], np.nonzero(grad.sum(axis=0))[0]
    # The window must lie inside the image (not clipped by the border) to be measured.
    assert rows.min() > 0 and rows.max() < size - 1
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


def test_receptive_field_is_70_at_three_layers():
    assert _receptive_field(3) == (70, 70)


def test_receptive_field_grows_with_layers():
    assert _receptive_field(1) == (16, 16)
    assert _receptive_field(2) == (34, 34)


def test_output_shape_and_dtype():
    critic = build_critic(ndf=8, n_layers=3)
    out = critic(np.zeros((2, 64, 64, 3), "float32"))
    assert tuple(out.shape) == (2, 6, 6, 1)  # 64 -> 32 -> 16 -> 8 -> 7 -> 6, as in pix2pix
    assert out.dtype == "float32"


def test_input_noise_only_while_training():
    critic = build_critic(ndf=4, noise=0.1, seed=0)
    x = np.zeros((1, 32, 32, 3), "float32")
    np.testing.assert_array_equal(critic(x, training=False), critic(x, training=False))
    assert not np.allclose(critic(x, training=True), critic(x, training=False))


def test_spectral_norm_bounds_kernels():
    critic = build_critic(ndf=4, spectral_norm=True, seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3)).astype("float32")
    for _ in range(3):
        out = critic(x, training=True)
    assert out.shape == (1, 2, 2, 1)
    sn = [layer for layer in critic.layers if "spectral" in layer.name]
    assert len(sn) == 5
    assert np.isfinite(np.asarray(out)).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown critic 'stylegan'"):
        build_critic("stylegan")
    with pytest.raises(ValueError, match="n_layers"):
        build_critic(n_layers=0)
