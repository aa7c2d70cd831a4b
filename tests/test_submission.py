"""The submission written at the end of a run: every photo through the best generator, on the
run's devices, into a zip Kaggle accepts; and the checks that refuse a bad one before training.
The runs that submit are elsewhere, each serving more checks: tests/test_train.py's end-to-end run
(TensorFlow, scored, resumed) and tests/test_train_jax.py's README command (JAX, one jitted call
sharded over two host devices); both check their zip with assert_zip_is_the_translation."""

import io
import zipfile

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from monet_tf.inference import submission
from tests.test_train import run_train


def _jpeg(size=(256, 256), seed=0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()


def _zip(path, entries):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return path


def test_check_zip_accepts_a_good_archive_and_names_each_fault(tmp_path):
    good = _zip(tmp_path / "good.zip", [(f"{i}.jpg", _jpeg(seed=i)) for i in range(5)])
    assert submission.check_zip(str(good), expected=5) == 5
    with pytest.raises(submission.SubmissionError, match="5 images; Kaggle needs 7,000 to 10,000"):
        submission.check_zip(str(good))
    faults = {
        "expected 6": [(f"{i}.jpg", _jpeg()) for i in range(5)],
        "duplicate image names": [("a.jpg", _jpeg()), ("A.jpg", _jpeg()), ("b.jpg", _jpeg()),
                                  ("c.jpg", _jpeg()), ("d.jpg", _jpeg()), ("e.jpg", _jpeg())],
        "is not a top-level .jpg JPEG": [("sub/a.jpg", _jpeg())] + [
            (f"{i}.jpg", _jpeg()) for i in range(5)],
        r"is \(128, 128\) RGB, not 256x256": [(f"{i}.jpg", _jpeg((128, 128))) for i in range(6)],
    }
    for i, (message, entries) in enumerate(faults.items()):
        with pytest.raises(submission.SubmissionError, match=message):
            submission.check_zip(str(_zip(tmp_path / f"bad{i}.zip", entries)), expected=6)


def test_auto_means_the_kaggle_working_folder_only_on_kaggle(monkeypatch):
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    assert submission.resolve_path("auto") is None
    assert submission.resolve_path("") is None
    assert submission.resolve_path("out/images.zip") == "out/images.zip"


def test_a_submission_that_cannot_be_written_is_refused_before_training(tmp_path):
    nowhere = run_train(tmp_path / "a", f"--submission={tmp_path / 'missing' / 'images.zip'}",
                        "--config.submission.allow_any_count=True", timeout=300)
    assert nowhere.returncode == 2, nowhere.stderr[-2000:]
    assert f"folder {tmp_path / 'missing'} does not exist" in nowhere.stderr
    too_few = run_train(tmp_path / "b", f"--submission={tmp_path / 'images.zip'}", timeout=300)
    assert too_few.returncode == 2, too_few.stderr[-2000:]
    assert "has 32 images; a Kaggle images.zip needs 7,000 to 10,000" in too_few.stderr
    for result in (nowhere, too_few):
        assert "Epoch" not in result.stdout


def test_the_translator_over_two_replicas_is_the_generator_rounded_to_uint8(two_cpu_strategy):
    """Each replica's slice of the batch, gathered in order, is what the generator makes of the
    photos, quantised as images.zip holds them (runtime.translate, the grids' and scores' call)."""
    from monet_tf.data import to_float, to_uint8
    from monet_tf.models.generators import build_generator
    from monet_tf.runtime.devices import from_tf_strategy
    from monet_tf.runtime.translate import translate

    with two_cpu_strategy.scope():
        generator = build_generator("resnet_2blocks", ngf=4, seed=0, image_size=16)
    photos = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), np.uint8)
    run = submission.translator(generator, from_tf_strategy(two_cpu_strategy), global_batch=4)
    expected = to_uint8(generator(to_float(photos), training=False)).numpy()
    assert run(photos).dtype == np.uint8 and len(np.unique(expected)) > 8
    np.testing.assert_array_equal(run(photos), expected)
    np.testing.assert_array_equal(translate(generator, photos, uint8=True, uint8_inputs=True),
                                  expected)


def assert_zip_is_the_translation(path, saved_model, sample_dir):
    serve = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    records = tf.data.TFRecordDataset(sorted(map(str, (sample_dir / "photo_tfrec").glob("*.tfrec"))))
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert len(names) == len(set(names)) == 32
        for record in records.take(5):
            example = tf.io.parse_single_example(record, {
                "image_name": tf.io.FixedLenFeature([], tf.string),
                "image": tf.io.FixedLenFeature([], tf.string)})
            photo = tf.image.resize(tf.io.decode_jpeg(example["image"]), [256, 256])
            photo = tf.cast(tf.round(tf.clip_by_value(photo, 0, 255)), tf.uint8)
            # Through the same JPEG encoding: an untrained generator's grain alone moves ~15 levels.
            expected = tf.io.decode_jpeg(tf.io.encode_jpeg(serve(photo[None])["images"][0],
                                                           quality=95)).numpy().astype(int)
            name = example["image_name"].numpy().decode() + ".jpg"
            got = np.asarray(Image.open(io.BytesIO(archive.read(name)))).astype(int)
            assert got.shape == (256, 256, 3)
            assert np.abs(got - expected).mean() < 3, name
            assert np.abs(got - photo.numpy().astype(int)).mean() > 10, name  # not the input
