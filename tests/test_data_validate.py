"""monet_tf.data.validate: every bad-input case of the data issue stops with the file and record, or
is skipped and counted with skip_bad_records; convertible images become RGB; the held-out split."""

import numpy as np
import pytest

from monet_tf import data
from tests.data_files import (colour_shard, colours, data_config, encode, pixel_colours, solid,
                              write_images, write_shard)

RED, GREEN, BLUE, GREY = (200, 30, 30), (30, 180, 60), (40, 60, 210), (128, 128, 128)


def sources_for(photo_path, monet_path):
    return data.find_sources(monet=str(monet_path), photo=str(photo_path))


@pytest.fixture
def monet_shard(tmp_path):
    return colour_shard(tmp_path / "monet" / "monet00-4.tfrec", colours(4, 7), "m", "monet", 64)


def all_training_photos(sources, report, n_batches=4):
    cfg = data_config(cache=False)
    batches = data.train_dataset(sources, report, cfg, report.photo.count, seed=0).take(n_batches)
    return [c for photos, _ in batches for c in pixel_colours(photos)]


def test_shared_competition_data_counts(shared_data):
    report = data.validate(data.find_sources(str(shared_data)))
    assert (report.monet.count, report.photo.count) == (300, 7038)
    assert report.monet.skipped == report.photo.skipped == 0


def test_sample_counts_and_describe(sample_dir):
    report = data.validate(data.find_sources(str(sample_dir)), heldout_fraction=0.25)
    assert (report.monet.count, report.photo.count) == (30, 32)
    assert report.photo.heldout_count == 8 and report.monet.heldout_count == 0
    assert report.describe() == ("monet: 30 images (0 skipped); photo: 32 images "
                                 "(0 skipped, 8 held out)")


def test_grayscale_rgba_cmyk_palette_and_png_records_become_rgb(tmp_path, monet_shard):
    """Every convertible form decodes to 3 channels with the right colour; nothing is skipped."""
    forms = [("jpeg_gray", encode(solid(GREY, 64, 64), "JPEG", mode="L", quality=100)),
             ("png_gray", encode(solid(GREY, 64, 64), mode="L")),
             ("png_rgba", encode(solid(RED, 64, 64), mode="RGBA")),
             ("jpeg_cmyk", encode(solid(GREEN, 64, 64), "JPEG", mode="CMYK", quality=100)),
             ("png_palette", encode(solid(BLUE, 64, 64), mode="P")),
             ("png_rgb", encode(solid(RED, 64, 64)))]
    shard = write_shard(tmp_path / "photo" / "p.tfrec", forms)
    sources = sources_for(shard, monet_shard)
    report = data.validate(sources)
    assert (report.photo.count, report.photo.skipped) == (6, 0)
    images = [image.numpy() for image in data.eval_images(sources, report, "photo",
                                                          data_config(), 10)]
    assert [image.shape for image in images] == [(32, 32, 3)] * 6
    means = [np.round((image.mean((0, 1)) + 1) * 127.5) for image in images]
    for got, want in zip(means, [GREY, GREY, RED, GREEN, BLUE, RED]):
        np.testing.assert_allclose(got, want, atol=3)


def test_not_a_tfrecord_file_names_the_file(tmp_path, monet_shard):
    bogus = tmp_path / "photo" / "photo00.tfrec"
    bogus.parent.mkdir()
    bogus.write_bytes(b"these are not the records you are looking for" * 20)
    sources = sources_for(bogus, monet_shard)
    with pytest.raises(data.DataError, match=f"^{bogus}: record 0 is unreadable "
                                             r"\(truncated or not a TFRecord\)"):
        data.validate(sources)


def test_truncated_shard_names_the_record_or_skips_the_rest(tmp_path, monet_shard):
    shard = colour_shard(tmp_path / "photo" / "photo00-3.tfrec", colours(3), "p")
    shard.write_bytes(shard.read_bytes()[:-20])  # Cuts into the third record.
    sources = sources_for(shard, monet_shard)
    with pytest.raises(data.DataError, match=f"^{shard}: record 2 is unreadable"):
        data.validate(sources, min_image_size=16)
    report = data.validate(sources, min_image_size=16, skip_bad_records=True)
    assert (report.photo.count, report.photo.skipped) == (2, 1)
    assert set(all_training_photos(sources, report)) == set(colours(3)[:2])


def test_record_that_is_not_an_image_names_file_record_and_name(tmp_path, monet_shard):
    good = [(f"p{i}", encode(solid(c))) for i, c in enumerate(colours(4))]
    shard = write_shard(tmp_path / "photo" / "photo00-5.tfrec",
                        good[:2] + [("scribble", b"definitely not pixels")] + good[2:])
    sources = sources_for(shard, monet_shard)
    with pytest.raises(data.DataError, match=rf"^{shard}: record 2 \(scribble\) is not a "
                                             "decodable image"):
        data.validate(sources, min_image_size=16)


def test_skip_bad_records_counts_reports_and_trains_on_only_the_good_ones(tmp_path, monet_shard,
                                                                          capsys):
    good = [(f"p{i}", encode(solid(c))) for i, c in enumerate(colours(5))]
    first = write_shard(tmp_path / "photo" / "photo00.tfrec",
                        [("bad0", b"junk")] + good[:3] + [("tiny", encode(solid(RED, 8, 8)))])
    second = write_shard(tmp_path / "photo" / "photo01.tfrec",
                         good[3:] + [("bad1", encode(solid(RED))[:30])])
    sources = data.find_sources(monet=str(monet_shard), photo=str(tmp_path / "photo"))
    report = data.validate(sources, min_image_size=16, skip_bad_records=True)
    assert (report.photo.count, report.photo.skipped) == (5, 3)
    assert report.photo.bad == {(str(first), 0), (str(first), 4), (str(second), 2)}
    assert "warning: photo: skipped 3 bad record(s)" in capsys.readouterr().out
    # Each epoch of 5 photos holds each good photo once, and never a bad one.
    cfg = data_config(cache=False)
    batches = data.train_dataset(sources, report, cfg, 5, seed=0).take(3)
    for photos, monets in batches:
        assert sorted(pixel_colours(photos)) == sorted(colours(5))
        assert set(pixel_colours(monets)) <= set(colours(4, 7))


def test_images_under_the_minimum_size(tmp_path, monet_shard):
    shard = write_shard(tmp_path / "photo" / "p.tfrec",
                        [("ok", encode(solid(RED, 64, 64))), ("small", encode(solid(RED, 63, 90)))])
    sources = sources_for(shard, monet_shard)
    with pytest.raises(data.DataError, match=r"record 1 \(small\) is 90x63 px, under the minimum "
                                             r"of 64 px \(--config.data.min_image_size\)"):
        data.validate(sources)
    assert data.validate(sources, min_image_size=63).photo.count == 2


def test_bad_file_in_an_image_folder_names_the_file(tmp_path, monet_shard):
    folder = tmp_path / "photos"
    [_, bad] = write_images(folder, {"a.png": encode(solid(RED, 64, 64)),
                                     "sub/b.jpg": b"\xff\xd8\xff not really"})
    sources = sources_for(folder, monet_shard)
    with pytest.raises(data.DataError, match=rf"^{bad}: record 0 \(b\) is not a decodable image"):
        data.validate(sources)
    report = data.validate(sources, skip_bad_records=True)
    assert (report.photo.count, report.photo.skipped) == (1, 1)
    assert all_training_photos(sources, report, 2) == [RED, RED]


def test_a_domain_with_nothing_usable_is_an_error(tmp_path, monet_shard):
    shard = write_shard(tmp_path / "photo" / "p.tfrec", [("junk", b"junk")])
    with pytest.raises(data.DataError, match="photo: tfrecord from .*: no usable images"):
        data.validate(sources_for(shard, monet_shard), skip_bad_records=True)


def test_heldout_split_is_by_name_not_by_order(tmp_path, monet_shard):
    """The same names are held out however the records are ordered or sharded."""
    items = [(f"photo{i:03d}", encode(solid(c))) for i, c in enumerate(colours(40))]
    one = write_shard(tmp_path / "a" / "all.tfrec", items)
    write_shard(tmp_path / "b" / "x.tfrec", items[::-1][:25])
    write_shard(tmp_path / "b" / "y.tfrec", items[::-1][25:])
    split = {}
    for key, spec in (("one", one), ("two", tmp_path / "b")):
        sources = sources_for(spec, monet_shard)
        report = data.validate(sources, min_image_size=16, heldout_fraction=0.2)
        assert report.photo.heldout_count == 8
        cfg = data_config(cache=False)
        held = set(pixel_colours(np.stack(list(data.heldout_photos(sources, report, cfg, 100)))))
        trained = set(all_training_photos(sources, report, 2))
        assert len(held) == 8 and len(trained) == 32 and not held & trained
        split[key] = held
    assert split["one"] == split["two"]
    assert data.steps_per_epoch(report, data_config(), 4) == 8  # 32 training photos / 4.
    assert data.steps_per_epoch(report, data_config(steps_per_epoch=3), 4) == 3
