"""monet_tf.data.sources: where each domain's images come from (Kaggle layout, explicit specs, the
bundled sample, TFDS), the errors for each way that goes wrong, and read_image_files."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from monet_tf import data
from monet_tf.data import sources as sources_module
from tests.data_files import (colour_shard, colours, copy_competition_monets, encode, gradient,
                              solid, write_images)


def test_kaggle_layout_with_tfrecords(sample_dir):
    found = data.find_sources(str(sample_dir))
    assert (found.monet.kind, found.photo.kind) == ("tfrecord", "tfrecord")
    assert found.monet.files == tuple(str(p) for p in sorted((sample_dir / "monet_tfrec").iterdir()))
    assert [os.path.basename(f) for f in found.photo.files] == ["photo00-16.tfrec", "photo01-16.tfrec"]
    assert found["photo"] is found.photo
    assert "monet: tfrecord from" in found.describe() and "(2 files)" in found.describe()


def test_kaggle_layout_with_jpg_folders(tmp_path):
    """*_jpg folders are used when there are no *_tfrec folders; names are the file stems."""
    write_images(tmp_path / "monet_jpg", {f"m{i}.jpg": encode(gradient(64, 64), "JPEG")
                                          for i in range(3)})
    write_images(tmp_path / "photo_jpg", {f"p{i}.jpg": encode(solid(c, 70, 90), "JPEG")
                                          for i, c in enumerate(colours(4))})
    found = data.find_sources(str(tmp_path))
    assert (found.monet.kind, found.photo.kind) == ("images", "images")
    assert [os.path.basename(f) for f in found.photo.files] == [f"p{i}.jpg" for i in range(4)]
    names = [n.numpy().decode() for n, _ in found.monet.images()]
    assert names == ["m0", "m1", "m2"]
    report = data.validate(found)
    assert (report.monet.count, report.photo.count) == (3, 4)


def test_tfrec_folders_win_over_jpg_folders(shared_data):
    """The competition download has both; the TFRecords are read (one file per shard)."""
    found = data.find_sources(str(shared_data))
    assert found.monet.kind == found.photo.kind == "tfrecord"
    assert len(found.monet.files) == 5 and len(found.photo.files) == 20
    jpg = data.find_sources(monet=str(shared_data / "monet_jpg"),
                            photo=str(shared_data / "photo_jpg"))
    # Counted, not fixed: a local copy of photo_jpg may be trimmed (Kaggle's has 7,038).
    on_disk = [len(list((shared_data / f"{d}_jpg").glob("*.jpg"))) for d in ("monet", "photo")]
    assert [len(jpg.monet.files), len(jpg.photo.files)] == on_disk and min(on_disk) > 0


def test_explicit_specs_dir_glob_single_file_and_image_folder(sample_dir, tmp_path):
    """Per-domain specs: a TFRecord glob, a single shard, and a folder of images searched
    recursively (PNG and JPEG, any case), ignoring other files."""
    glob = str(sample_dir / "monet_tfrec" / "monet01-*.tfrec")
    shard = str(sample_dir / "photo_tfrec" / "photo00-16.tfrec")
    found = data.find_sources(monet=glob, photo=shard)
    assert found.monet.kind == "tfrecord" and found.monet.spec == glob
    assert [os.path.basename(f) for f in found.monet.files] == ["monet01-15.tfrec"]
    assert found.photo.files == (shard,)
    report = data.validate(found)
    assert (report.monet.count, report.photo.count) == (15, 16)

    folder = tmp_path / "photos"
    write_images(folder, {"a.png": encode(solid((1, 2, 3), 64, 64)),
                          "deep/er/b.PNG": encode(solid((4, 5, 6), 64, 64)),
                          "deep/c.JPEG": encode(solid((7, 8, 9), 64, 64), "JPEG"),
                          "deep/notes.txt": b"text", "d.gif": b"GIF89a"})
    found = data.find_sources(str(sample_dir), photo=str(folder))
    assert found.monet.kind == "tfrecord"  # From data_dir; the explicit photo spec wins.
    assert found.photo.kind == "images"
    assert sorted(os.path.relpath(f, folder) for f in found.photo.files) == [
        "a.png", "deep/c.JPEG", "deep/er/b.PNG"]
    single = data.source_from_spec(str(folder / "a.png"), "photo", "--config.data.photo")
    assert single.kind == "images" and single.files == (str(folder / "a.png"),)


def test_no_arguments_use_kaggle_input_else_the_bundled_sample(sample_dir):
    if os.path.isdir(sources_module.KAGGLE_INPUT):
        pytest.skip("running on Kaggle: the default is the mounted competition data")
    assert sources_module.SAMPLE_DIR == str(sample_dir)
    default = data.find_sources()
    assert default == data.find_sources(str(sample_dir))
    only_monet = data.find_sources(monet=str(sample_dir / "photo_tfrec"))
    assert only_monet.monet.spec == str(sample_dir / "photo_tfrec")
    assert only_monet.photo == default.photo  # The missing domain falls back to the sample too.


def test_missing_and_empty_locations_are_data_errors_naming_them(sample_dir, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(data.DataError, match=f"--data_dir={missing}: no such directory"):
        data.find_sources(str(missing))
    with pytest.raises(data.DataError, match=rf"--config.data.photo={missing}: no such file"):
        data.find_sources(str(sample_dir), photo=str(missing))
    glob = str(tmp_path / "*.tfrec")
    with pytest.raises(data.DataError) as raised:
        data.find_sources(monet=glob, photo=str(sample_dir / "photo_tfrec"))
    assert str(raised.value) == f"--config.data.monet={glob}: the glob matches no files"
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "readme.txt").write_text("nothing to see")
    with pytest.raises(data.DataError, match=f"--config.data.monet={empty}: the folder has no "
                                             "TFRecords"):
        data.find_sources(monet=str(empty), photo=str(sample_dir / "photo_tfrec"))
    with pytest.raises(data.DataError, match=f"--data_dir={empty}: expected a Kaggle-layout "
                                             "folder with monet_tfrec/ or monet_jpg/"):
        data.find_sources(str(empty))


TFDS_PROBE = """
import json, sys
from monet_tf import data
out = {}
for spec in ("tfds:cycle_gan/monet2photo", "tfds:no_such_dataset_xyz"):
    found = data.find_sources(monet=spec, photo=spec)
    out[spec] = [found.monet.kind, found.monet.spec]
    try:
        data.validate(found)
    except data.DataError as e:
        out[spec].append(str(e))
print(json.dumps(out))
"""


def test_tfds_not_prepared_says_how_to_prepare_and_downloads_nothing(repo_root, tmp_path):
    """TFDS reads TFDS_DATA_DIR once, at import: a fresh process sees the empty tmp dir."""
    tfds_dir = tmp_path / "tfds"
    tfds_dir.mkdir()
    env = dict(os.environ, PYTHONPATH=str(repo_root), TF_CPP_MIN_LOG_LEVEL="2",
               TFDS_DATA_DIR=str(tfds_dir))
    result = subprocess.run([sys.executable, "-c", TFDS_PROBE], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    kind, spec, message = out["tfds:cycle_gan/monet2photo"]
    assert (kind, spec) == ("tfds", "cycle_gan/monet2photo")
    assert message.startswith(f"tfds:cycle_gan/monet2photo: not prepared in {tfds_dir}")
    assert "tfds build cycle_gan/monet2photo" in message and "TFDS_DATA_DIR" in message
    assert out["tfds:no_such_dataset_xyz"][2].startswith(
        "tfds:no_such_dataset_xyz: not a TFDS dataset")
    assert os.listdir(tfds_dir) == []


def test_read_image_files_from_a_folder_keeps_names_and_sizes(tmp_path):
    """For predict/fid: every image at its own size, RGB, named by stem, in path order."""
    folder = tmp_path / "in"
    write_images(folder, {"b/gray.png": encode(solid((90, 90, 90), 30, 50), mode="L"),
                          "a.png": encode(solid((10, 200, 30), 20, 10)),
                          "c.jpg": encode(gradient(48, 64), "JPEG", quality=100)})
    got = [(n.numpy().decode(), image.numpy()) for n, image in data.read_image_files(str(folder))]
    assert [n for n, _ in got] == ["a", "gray", "c"]  # Sorted by path: a.png, b/gray.png, c.jpg.
    assert [image.shape for _, image in got] == [(20, 10, 3), (30, 50, 3), (48, 64, 3)]
    assert all(image.dtype == np.uint8 for _, image in got)
    assert (got[0][1] == (10, 200, 30)).all() and (got[1][1] == 90).all()
    assert np.abs(got[2][1].astype(int) - gradient(48, 64)).mean() < 2


def test_read_image_files_from_a_tfrecord_glob(sample_dir, tmp_path):
    got = list(data.read_image_files(str(sample_dir / "monet_tfrec" / "*.tfrec")))
    assert len(got) == 30
    assert {tuple(image.shape) for _, image in got} == {(256, 256, 3)}
    records = [n.numpy() for n, _ in data.find_sources(str(sample_dir)).monet.records()]
    assert [n.numpy() for n, _ in got] == records
    shard = colour_shard(tmp_path / "c.tfrec", colours(3), "c", size=24)
    pixels = [image.numpy()[0, 0].tolist() for _, image in data.read_image_files(str(shard))]
    assert pixels == [list(c) for c in colours(3)]


def test_read_image_files_errors_name_the_flag(tmp_path):
    with pytest.raises(data.DataError, match=f"--input={tmp_path / 'none'}: no such file"):
        data.read_image_files(str(tmp_path / "none"))
    with pytest.raises(data.DataError, match="--images=.*: the glob matches no files"):
        data.read_image_files(str(tmp_path / "*.png"), flag="--images")


def test_copied_competition_jpgs_match_the_tfrecords(shared_data, tmp_path):
    """A tmp copy of a few monet_jpg files decodes to the same pixels as the same-named records."""
    folder = tmp_path / "monet_jpg"
    copy_competition_monets(shared_data, folder, 4)
    from_jpg = {n.numpy(): image.numpy() for n, image in data.read_image_files(str(folder))}
    from_records = {n.numpy(): data.decode_rgb(image_bytes).numpy() for n, image_bytes in
                    data.find_sources(str(shared_data)).monet.records() if n.numpy() in from_jpg}
    assert sorted(from_records) == sorted(from_jpg) and len(from_jpg) == 4
    for name, image in from_jpg.items():
        np.testing.assert_array_equal(image, from_records[name])
