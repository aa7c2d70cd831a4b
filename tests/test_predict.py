"""monet_tf.inference.predict: exported generator over folders / TFRecords into JPEG folders and
images.zip."""

import io
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from monet_tf import data
from monet_tf.inference.export import export_generator
from monet_tf.models.generators import build_generator
from monet_tf.inference.predict import KAGGLE_MAX_IMAGES, KAGGLE_MIN_IMAGES, PredictError, predict
from tests.data_files import encode, gradient, write_images, write_shard

# Its module fixture serves every test here: one xdist worker runs them all (--dist loadgroup).
pytestmark = pytest.mark.xdist_group("predict")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    generator = build_generator("resnet_2blocks", ngf=8, seed=0)
    generator(np.zeros((1, 32, 32, 3), np.float32))
    path = tmp_path_factory.mktemp("export") / "photo_to_monet"
    export_generator(generator, str(path))
    return str(path)


def run_cli(repo_root, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(repo_root), TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, "-m", "monet_tf", "predict", *args], env=env, capture_output=True,
        text=True, timeout=600,
    )


def save_image(path, size, mode="RGB", fmt="JPEG", seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"RGB": 3, "RGBA": 4, "L": 1, "CMYK": 4}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], channels), np.uint8)
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(path, fmt)


def check_jpeg(data: bytes) -> None:
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "JPEG" and image.mode == "RGB" and image.size == (256, 256)


def jpeg_record(name: str, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), np.uint8)
    feature = {
        "image_name": tf.train.Feature(bytes_list=tf.train.BytesList(value=[name.encode()])),
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[tf.io.encode_jpeg(pixels).numpy()])),
        "target": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"photo"])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_cli_folder_of_mixed_images_to_folder(repo_root, model_dir, tmp_path):
    photos = tmp_path / "photos"
    save_image(photos / "a.jpg", (256, 256))
    save_image(photos / "wide.jpg", (300, 200), seed=1)  # Resized to 256x256.
    save_image(photos / "gray.png", (64, 64), mode="L", fmt="PNG", seed=2)
    save_image(photos / "alpha.PNG", (40, 60), mode="RGBA", fmt="PNG", seed=3)
    save_image(photos / "cmyk.jpg", (100, 100), mode="CMYK", seed=4)
    save_image(photos / "sub" / "a.jpg", (256, 256), seed=5)  # Same stem as photos/a.jpg.
    (photos / "notes.txt").write_text("not an image: ignored")
    out = tmp_path / "monet"
    result = run_cli(repo_root, "--model", model_dir, "--input", str(photos), "--output", str(out),
                     "--batch_size", "4")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wrote 6 images" in result.stdout
    assert "ignoring 1 files" in result.stdout  # notes.txt: reported, not silently dropped.
    names = sorted(os.listdir(out))
    assert names == ["a.jpg", "a_1.jpg", "alpha.jpg", "cmyk.jpg", "gray.jpg", "wide.jpg"]
    for name in names:
        check_jpeg((out / name).read_bytes())


def test_cli_tfrecords_to_zip(repo_root, model_dir, tmp_path, shared_data):
    files = sorted((shared_data / "photo_tfrec").glob("*.tfrec"))[:1]
    expected = sum(1 for _ in tf.data.TFRecordDataset([str(f) for f in files]))
    out = tmp_path / "images.zip"
    result = run_cli(repo_root, "--model", model_dir, "--input", str(files[0]), "--output", str(out),
                     "--allow_any_count")
    assert result.returncode == 0, result.stderr[-3000:]
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        assert len(names) == expected and len(set(names)) == expected
        assert all(n.endswith(".jpg") and "/" not in n for n in names)
        for name in names:
            check_jpeg(archive.read(name))
    assert not os.path.exists(str(out) + ".partial")


def test_cli_refuses_kaggle_zip_outside_7000_to_10000(repo_root, model_dir, tmp_path, shared_data):
    photos = shared_data / "photo_jpg"
    count = len(list(photos.glob("*.jpg")))
    if KAGGLE_MIN_IMAGES <= count <= KAGGLE_MAX_IMAGES:
        pytest.skip(f"{photos} holds {count} photos, a valid submission count")
    out = tmp_path / "images.zip"
    result = run_cli(repo_root, "--model", model_dir, "--input", str(photos),
                     "--output", str(out))
    assert result.returncode != 0
    assert f"has {count} images" in result.stderr and "7,000 to 10,000" in result.stderr
    assert "--allow_any_count" in result.stderr
    assert not out.exists()


def test_too_many_records_are_refused_before_any_translation(model_dir, tmp_path):
    """10,001 records are counted, not decoded: the refusal comes before the model is even run."""
    with tf.io.TFRecordWriter(str(tmp_path / "many.tfrec")) as writer:
        record = jpeg_record("x", 0)
        for _ in range(10_001):
            writer.write(record)
    with pytest.raises(PredictError, match="has 10001 images"):
        predict(model_dir, str(tmp_path / "*.tfrec"), str(tmp_path / "images.zip"))
    assert not list(tmp_path.glob("images.zip*"))


def test_predict_function_dedupes_record_names(model_dir, tmp_path):
    with tf.io.TFRecordWriter(str(tmp_path / "photos.tfrec")) as writer:
        for i, name in enumerate(["p1", "p2", "p1", "P2"]):
            writer.write(jpeg_record(name, i))
    out = tmp_path / "out.zip"
    assert predict(model_dir, str(tmp_path), str(out), allow_any_count=True, verbose=False) == 4
    with zipfile.ZipFile(out) as archive:
        assert archive.namelist() == ["p1.jpg", "p2.jpg", "p1_1.jpg", "P2_1.jpg"]


def test_bad_inputs_name_the_path(repo_root, model_dir, tmp_path):
    photos = tmp_path / "photos"
    save_image(photos / "ok.jpg", (64, 64))
    out = str(tmp_path / "out")
    with pytest.raises(PredictError, match="missing.* is not a folder"):
        predict(str(tmp_path / "missing"), str(photos), out)
    with pytest.raises(PredictError, match=f"{photos} is not a SavedModel"):
        predict(str(photos), str(photos), out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PredictError, match="empty: the folder has no TFRecords"):
        predict(model_dir, str(tmp_path / "empty"), out)
    with pytest.raises(PredictError, match="nothing-here.* matches no files"):
        predict(model_dir, str(tmp_path / "nothing-here*.tfrec"), out)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(PredictError, match="a-file is a file"):
        predict(model_dir, str(photos), str(tmp_path / "a-file"))
    (photos / "broken.jpg").write_bytes(b"this is not a JPEG")
    with pytest.raises(PredictError, match=r"broken.jpg: record 0 \(broken\) is not a decodable"):
        predict(model_dir, str(photos), out, verbose=False)
    result = run_cli(repo_root, "--model", str(tmp_path / "missing"), "--input", str(photos),
                     "--output", out)
    assert result.returncode == 2
    assert "missing' is not a folder" in result.stderr


def test_output_pixels_are_the_models_translation_not_the_input(model_dir, tmp_path):
    """Each JPEG written is the SavedModel's output on the resized input, not the input itself.

    The untrained generator's output is grainy, so the reference is that output through the same
    JPEG encoding; the written file must then match it to within decoder rounding.
    """
    photos = tmp_path / "photos"
    write_images(photos, {"square.png": encode(gradient(64, 64)),
                          "wide.png": encode(gradient(60, 90)[:, ::-1])})  # Resized to 64x64.
    out = tmp_path / "monet"
    assert predict(model_dir, str(photos), str(out), image_size=64, quality=95,
                   verbose=False) == 2
    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    for name in ("square", "wide"):
        pixels = data.decode_rgb(tf.io.read_file(str(photos / f"{name}.png")))
        image = data.resize_square(pixels, 64)
        (translated,) = serve(image[None]).values()
        expected = tf.io.decode_jpeg(tf.io.encode_jpeg(translated[0], quality=95)).numpy()
        written = np.asarray(Image.open(out / f"{name}.jpg"), np.int32)
        assert written.shape == expected.shape == (64, 64, 3)
        assert np.abs(written - expected.astype(np.int32)).mean() < 3, name
        assert np.abs(written - image.numpy().astype(np.int32)).mean() > 20, name


def test_a_bad_image_gets_the_same_message_from_predict_and_training(model_dir, tmp_path):
    """A .jpg holding text: predict names it exactly as training's data validation does."""
    photos = tmp_path / "photos"
    for i in range(3):
        save_image(photos / f"p{i}.jpg", (64, 64), seed=i)
    (photos / "p1_notes.jpg").write_text("a text file saved with the wrong extension")
    monets = tmp_path / "monets"
    save_image(monets / "m.jpg", (64, 64))
    with pytest.raises(data.DataError) as from_training:
        data.validate(data.find_sources(monet=str(monets), photo=str(photos)))
    with pytest.raises(PredictError) as from_predict:
        predict(model_dir, str(photos), str(tmp_path / "out"), batch_size=2, image_size=64,
                verbose=False)
    assert str(from_predict.value) == str(from_training.value)
    message = str(from_training.value)
    assert message.startswith(f"{photos / 'p1_notes.jpg'}: record 0 (p1_notes) is not a "
                              "decodable image: ")
    assert "{{" not in message and "[Op:" not in message  # TensorFlow's reason, undecorated.


def test_a_bad_record_gets_the_same_message_from_predict_and_training(model_dir, tmp_path):
    """A TFRecord whose third record holds text, not an image: the same file, record and name."""
    good = [(f"p{i}", encode(gradient(64, 64))) for i in range(3)]
    shard = write_shard(tmp_path / "photo" / "photo00-4.tfrec",
                        good[:2] + [("scribble", b"not pixels")] + good[2:])
    monets = tmp_path / "monets"
    save_image(monets / "m.jpg", (64, 64))
    with pytest.raises(data.DataError) as from_training:
        data.validate(data.find_sources(monet=str(monets), photo=str(shard.parent)))
    with pytest.raises(PredictError) as from_predict:
        predict(model_dir, str(shard.parent), str(tmp_path / "out"), batch_size=2, image_size=64,
                verbose=False)
    assert str(from_predict.value) == str(from_training.value)
    assert str(from_training.value).startswith(
        f"{shard}: record 2 (scribble) is not a decodable image: ")
