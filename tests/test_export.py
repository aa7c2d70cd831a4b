"""export_generator: a uint8 -> uint8 SavedModel that a process with only TensorFlow can run."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from monet_tf.inference.export import INPUT_NAME, OUTPUT_KEY, export_generator
from monet_tf.config import generator_multiple
from monet_tf.models.generators import build_generator

# Its module fixture serves every test here: one xdist worker runs them all (--dist loadgroup).
pytestmark = pytest.mark.xdist_group("export")

SHAPES = [(1, 32, 32), (3, 48, 64), (2, 36, 44), (0, 32, 32)]  # [N, H, W], multiples of 4.


def keras_uint8(generator: keras.Model, images: np.ndarray) -> np.ndarray:
    """The Keras generator's translation of uint8 images, rounded back to uint8."""
    y = generator(images.astype(np.float32) / 127.5 - 1.0, training=False)
    return np.clip(np.round((np.asarray(y, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def random_images(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def run_serving(model_dir, images: np.ndarray) -> np.ndarray:
    fn = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    return fn(**{INPUT_NAME: tf.constant(images)})[OUTPUT_KEY].numpy()


@pytest.fixture(scope="module")
def resnet():
    generator = build_generator("resnet_2blocks", ngf=8, seed=1)
    generator(np.zeros((1, 32, 32, 3), np.float32))
    return generator


@pytest.fixture(scope="module")
def resnet_export(resnet, tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "photo_to_monet"
    export_generator(resnet, str(path), multiple=generator_multiple("resnet_2blocks"))
    return path


def test_fresh_tensorflow_only_process_runs_export_like_keras(resnet, resnet_export, tmp_path):
    """Loaded outside the repo with monet_tf made unimportable: same shapes, same pixels (+-1)."""
    inputs = {f"x{i}": random_images(*shape, seed=i) for i, shape in enumerate(SHAPES)}
    inputs["odd"] = random_images(2, 30, 33, seed=9)  # Not a multiple of 4: padded and cropped.
    np.savez(tmp_path / "in.npz", **inputs)
    script = textwrap.dedent(
        f"""
        import sys
        class NoMonet:  # Loading must not need this package, installed or not.
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "monet_tf":
                    raise ImportError("monet_tf is blocked in this process")
        sys.meta_path.insert(0, NoMonet())
        import numpy as np, tensorflow as tf
        model = tf.saved_model.load({str(resnet_export)!r})
        fn = model.signatures["serving_default"]
        spec = fn.structured_input_signature[1]["{INPUT_NAME}"]
        assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, None, None, 3], spec
        assert list(fn.structured_outputs) == ["{OUTPUT_KEY}"], fn.structured_outputs
        inputs = np.load("in.npz")
        out = {{k: fn({INPUT_NAME}=tf.constant(inputs[k]))["{OUTPUT_KEY}"].numpy() for k in inputs}}
        np.savez("out.npz", **out)
        assert not [m for m in sys.modules if m.startswith("monet_tf")]
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-I", "-c", script], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = np.load(tmp_path / "out.npz")
    for key in inputs:
        out, images = outputs[key], inputs[key]
        assert out.dtype == np.uint8 and out.shape == images.shape, (key, out.shape)
        if key != "odd" and len(images):
            diff = np.abs(out.astype(int) - keras_uint8(resnet, images).astype(int))
            assert diff.max() <= 1, (key, diff.max())
            assert out.std() > 0  # A real translation, not a constant image.


def test_unet_input_is_reflect_padded_to_its_multiple_and_cropped(tmp_path):
    unet = build_generator("unet_128", ngf=8, seed=2)
    path = tmp_path / "unet"
    export_generator(unet, str(path), multiple=generator_multiple("unet_128"))
    full = random_images(2, 128, 128, seed=3)
    diff = np.abs(run_serving(path, full).astype(int) - keras_uint8(unet, full).astype(int))
    assert diff.max() <= 1
    for n, h, w in [(1, 32, 32), (2, 64, 132), (1, 256, 128)]:
        out = run_serving(path, random_images(n, h, w))
        assert out.shape == (n, h, w, 3) and out.dtype == np.uint8


def float32_and_mixed_generators(seed: int = 4) -> tuple[keras.Model, keras.Model]:
    """The same generator (same weights) built under float32 and under mixed_bfloat16."""
    generators = []
    for policy in ("float32", "mixed_bfloat16"):
        keras.mixed_precision.set_global_policy(policy)
        try:
            generator = build_generator("resnet_2blocks", ngf=8, seed=seed)
            generator(np.zeros((1, 32, 32, 3), np.float32))
        finally:
            keras.mixed_precision.set_global_policy("float32")
        generators.append(generator)
    generators[1].set_weights(generators[0].get_weights())
    return generators[0], generators[1]


def test_mixed_precision_generator_is_served_in_float32(tmp_path):
    reference, mixed = float32_and_mixed_generators()
    export_generator(mixed, str(tmp_path / "m"))
    images = random_images(2, 32, 32, seed=5)
    float32_diff = np.abs(run_serving(tmp_path / "m", images).astype(int) - keras_uint8(reference, images))
    bfloat16_diff = np.abs(keras_uint8(mixed, images).astype(int) - keras_uint8(reference, images))
    assert float32_diff.max() <= 1
    assert bfloat16_diff.max() > 1  # Otherwise this test could not tell the two apart.


def test_bfloat16_export_matches_the_mixed_precision_keras_model(tmp_path):
    """precision="bfloat16" serves what the generator computes under mixed_bfloat16 (to +-2 where
    the graph rounds bfloat16 differently) from a float32 generator, which stays float32."""
    reference, mixed = float32_and_mixed_generators()
    export_generator(reference, str(tmp_path / "bf16"), precision="bfloat16")
    images = random_images(2, 32, 32, seed=5)
    served = run_serving(tmp_path / "bf16", images).astype(int)
    to_mixed = np.abs(served - keras_uint8(mixed, images))
    to_float32 = np.abs(served - keras_uint8(reference, images))
    # bfloat16 ran: a float32 export stays within 1 of the float32 model; this one does not, and
    # is clearly closer to the mixed_bfloat16 model (which itself is ~0.44 levels off float32).
    assert to_float32.max() > 1
    assert to_mixed.max() <= 2 and to_mixed.mean() < 0.75 * to_float32.mean()
    assert reference.layers[2].compute_dtype == "float32"  # The trained model is untouched.
    with pytest.raises(ValueError, match="--precision='float16' is not one of float32, bfloat16"):
        export_generator(reference, str(tmp_path / "f16"), precision="float16")


def test_re_export_replaces_a_saved_model_atomically(resnet, tmp_path):
    path = tmp_path / "model"
    export_generator(resnet, str(path))
    other = build_generator("resnet_2blocks", ngf=8, seed=7)
    other(np.zeros((1, 32, 32, 3), np.float32))
    export_generator(other, str(path))
    images = random_images(1, 32, 32)
    assert np.abs(run_serving(path, images).astype(int) - keras_uint8(other, images)).max() <= 1
    assert sorted(os.listdir(tmp_path)) == ["model"]  # No .tmp / .old left behind.


def test_refuses_to_overwrite_other_things_and_bad_generators(resnet, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("keep me")
    with pytest.raises(ValueError, match="is a file"):
        export_generator(resnet, str(a_file))
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a SavedModel"):
        export_generator(resnet, str(folder))
    assert (folder / "notes.txt").read_text() == "keep me"
    inputs = keras.Input((None, None, 3))
    gray = keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same")(inputs))
    with pytest.raises(ValueError, match=r"output shape .* expected \[N, H, W, 3\]"):
        export_generator(gray, str(tmp_path / "gray"))
    with pytest.raises(ValueError, match="multiple"):
        export_generator(resnet, str(tmp_path / "m"), multiple=0)
