"""monet_tf.data.make_tfrecords: the competition schema, byte-identical JPEGs where possible, and
what the rest of the data package reads back, through the function and the CLI in a real process."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from monet_tf import data
from monet_tf.data import records
from monet_tf.data.images import to_uint8
from monet_tf.data.make_tfrecords import write_tfrecords
from tests.data_files import (copy_competition_monets, data_config, encode, gradient, read_shard,
                              solid, write_images)

RED, TEAL, PLUM = (220, 30, 40), (20, 160, 150), (120, 60, 110)


@pytest.fixture
def mixed_folder(tmp_path):
    """Six images in every form the writer must handle, one in a sub-folder, plus a stray file."""
    folder = tmp_path / "input"
    write_images(folder, {
        "ready.jpg": encode(gradient(), "JPEG", quality=90),  # Already a competition JPEG.
        "lossless.png": encode(gradient()),
        "gray.jpg": encode(solid(RED, 256, 256), "JPEG", mode="L"),
        "nested/alpha.png": encode(solid(TEAL, 100, 80), mode="RGBA"),
        "wide.jpeg": encode(gradient(200, 300), "JPEG"),
        "cmyk.jpg": encode(solid(PLUM, 256, 256), "JPEG", mode="CMYK"),
        "notes.txt": b"not an image",
    })
    return folder


def stored(paths) -> dict[str, tuple[bytes, str]]:
    """{image_name: (image bytes, target)} over shards, checking every record's schema."""
    out = {}
    for path in paths:
        for example in read_shard(path):
            feature = example.features.feature
            assert set(feature) == {"image_name", "image", "target"}
            assert all(f.WhichOneof("kind") == "bytes_list" and len(f.bytes_list.value) == 1
                       for f in feature.values())
            name = feature["image_name"].bytes_list.value[0].decode()
            assert name not in out
            out[name] = feature["image"].bytes_list.value[0], \
                feature["target"].bytes_list.value[0].decode()
    return out


def test_schema_names_targets_and_shards(mixed_folder, sample_dir, tmp_path):
    """image_name is the stem, target the domain, every feature a single tf.string as in the
    competition's records; shards are named like the competition's, counts in their names."""
    competition = stored(sorted((sample_dir / "monet_tfrec").glob("*.tfrec")))
    assert len(competition) == 30 and {t for _, t in competition.values()} == {"monet"}
    paths = write_tfrecords(str(mixed_folder), str(tmp_path / "out"), "monet", 2)
    assert [os.path.basename(p) for p in paths] == ["monet00-3.tfrec", "monet01-3.tfrec"]
    assert [len(read_shard(p)) for p in paths] == [3, 3]
    got = stored(paths)
    assert sorted(got) == ["alpha", "cmyk", "gray", "lossless", "ready", "wide"]
    assert {target for _, target in got.values()} == {"monet"}
    # Parses with the reader's schema, the same one the competition's records use.
    name, image = records.parse(next(iter(tf.data.TFRecordDataset(paths[0]))))
    assert name.dtype == image.dtype == tf.string


def test_competition_jpeg_kept_byte_for_byte_others_reencoded(mixed_folder, tmp_path):
    """A 256x256 RGB JPEG is stored as is (no generation loss); PNG, grayscale, RGBA, CMYK and
    other sizes become 256x256 RGB JPEGs with the same picture."""
    got = stored(write_tfrecords(str(mixed_folder), str(tmp_path / "out"), "photo", 1))
    assert got["ready"][0] == (mixed_folder / "ready.jpg").read_bytes()
    for name in ("lossless", "gray", "alpha", "wide", "cmyk"):
        image_bytes = got[name][0]
        assert tf.io.is_jpeg(image_bytes), name
        assert tf.io.extract_jpeg_shape(image_bytes).numpy().tolist() == [256, 256, 3], name
    decoded = {name: tf.io.decode_jpeg(b).numpy().astype(int) for name, (b, _) in got.items()}
    assert np.abs(decoded["lossless"] - gradient()).mean() < 2
    gray = decoded["gray"]
    assert np.abs(gray[..., 0] - gray[..., 2]).max() <= 2
    assert abs(gray.mean() - np.dot(RED, [0.299, 0.587, 0.114])) < 3
    np.testing.assert_allclose(decoded["alpha"].mean((0, 1)), TEAL, atol=3)
    np.testing.assert_allclose(decoded["cmyk"].mean((0, 1)), PLUM, atol=3)
    # 300x200 stretched to 256x256: still a horizontal ramp in red, a vertical one in green.
    np.testing.assert_allclose(decoded["wide"][..., :2], gradient()[..., :2], atol=12)


def test_bad_image_and_bad_shard_count_are_data_errors(tmp_path):
    folder = tmp_path / "input"
    [bad] = write_images(folder, {"broken.jpg": b"\xff\xd8 truncated jpeg"})
    with pytest.raises(data.DataError, match=f"{bad}: not a decodable image"):
        write_tfrecords(str(folder), str(tmp_path / "out"), "monet", 1)
    with pytest.raises(data.DataError, match="--shards=0"):
        write_tfrecords(str(folder), str(tmp_path / "out"), "monet", 0)


def test_shards_are_capped_at_the_file_count(mixed_folder, tmp_path):
    paths = write_tfrecords(str(mixed_folder), str(tmp_path / "four"), "photo", 4)
    assert [os.path.basename(p) for p in paths] == [
        "photo00-2.tfrec", "photo01-2.tfrec", "photo02-1.tfrec", "photo03-1.tfrec"]
    paths = write_tfrecords(str(mixed_folder), str(tmp_path / "many"), "photo", 50)
    assert len(paths) == 6 and all(len(read_shard(p)) == 1 for p in paths)


def test_read_back_through_sources_validate_and_pipeline(mixed_folder, tmp_path):
    """What training sees is exactly the decoded stored JPEGs (at 256 px nothing is resized)."""
    root = tmp_path / "data"
    monet = write_tfrecords(str(mixed_folder), str(root / "monet_tfrec"), "monet", 2)
    photo = write_tfrecords(str(mixed_folder), str(root / "photo_tfrec"), "photo", 3)
    sources = data.find_sources(str(root))
    assert sources.monet.kind == "tfrecord" and list(sources.monet.files) == sorted(monet)
    assert list(sources.photo.files) == sorted(photo)
    report = data.validate(sources, min_image_size=256)
    assert (report.monet.count, report.photo.count) == (6, 6)

    cfg = data_config(image_size=256)
    expected = [tf.io.decode_jpeg(example.features.feature["image"].bytes_list.value[0]).numpy()
                for path in sorted(monet) for example in read_shard(path)]
    got = [to_uint8(image).numpy() for image in data.eval_images(sources, report, "monet", cfg, 10)]
    assert len(got) == 6
    for want, have in zip(expected, got):
        np.testing.assert_array_equal(have, want)

    photos, monets = next(iter(data.train_dataset(sources, report, cfg, 6, seed=0)))
    seen = sorted(to_uint8(image).numpy().tobytes() for image in monets)
    assert seen == sorted(e.tobytes() for e in expected)


def run_cli(repo_root, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(repo_root), TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "monet_tf.data.make_tfrecords", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_writes_the_same_shards_as_the_function(repo_root, mixed_folder, tmp_path):
    out = tmp_path / "cli"
    result = run_cli(repo_root, "--input", str(mixed_folder), "--output", str(out),
                     "--domain", "monet", "--shards", "2")
    assert result.returncode == 0, result.stderr
    assert f"wrote 2 shards to {out}" in result.stdout
    expected = write_tfrecords(str(mixed_folder), str(tmp_path / "function"), "monet", 2)
    assert sorted(os.listdir(out)) == [os.path.basename(p) for p in expected]
    for path in expected:  # The same records in the same order (not bytes: proto map order varies).
        cli = out / os.path.basename(path)
        assert stored([cli]) == stored([path])
        assert list(stored([cli])) == list(stored([path]))


@pytest.mark.parametrize("case", ["bad_domain", "no_input_flag", "missing_input", "empty_input"])
def test_cli_errors_name_the_flag_or_path(repo_root, tmp_path, case):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    missing = tmp_path / "missing"
    out = tmp_path / "out"
    args, expected = {
        "bad_domain": (["--input", str(empty), "--domain", "painting"],
                       "--domain=painting: value should be one of <monet|photo>"),
        "no_input_flag": (["--domain", "monet"], "--input"),
        "missing_input": (["--input", str(missing), "--domain", "monet"],
                          f"error: --input={missing}: no such directory"),
        "empty_input": (["--input", str(empty), "--domain", "photo"],
                        f"error: --input={empty}: no .jpg, .jpeg, .png files found"),
    }[case]
    result = run_cli(repo_root, *args, "--output", str(out))
    assert result.returncode != 0
    assert expected in result.stderr
    assert not out.exists()


def test_competition_jpegs_rewrite_to_the_competition_records(shared_data, tmp_path):
    """Five of the competition's monet_jpg files come back as exactly its records' bytes."""
    folder = tmp_path / "monet_jpg"
    names = copy_competition_monets(shared_data, folder, 5)
    got = stored(write_tfrecords(str(folder), str(tmp_path / "out"), "monet", 1))
    stems = {os.path.splitext(n)[0] for n in names}
    competition = {}
    for name, image in data.find_sources(str(shared_data)).monet.records():
        if name.numpy().decode() in stems:
            competition[name.numpy().decode()] = (image.numpy(), "monet")
    assert len(competition) == 5 and got == competition
