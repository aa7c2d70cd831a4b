"""monet_tf.data.inspect: the CLI on the bundled sample in a real process, bad input, and what the
report counts, on tiny images whose histograms are known exactly."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from matplotlib.text import Text

from monet_tf import data
from monet_tf.data.inspect import inspect, report_figure


def run_cli(repo_root, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(repo_root), TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "monet_tf.data.inspect", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_writes_a_png_report_of_the_sample(repo_root, sample_dir, tmp_path):
    out = tmp_path / "report" / "sample.png"
    result = run_cli(repo_root, f"--data_dir={sample_dir}", f"--out={out}", "--num_images=4")
    assert result.returncode == 0, result.stderr
    assert "Monet: 30 records (0 skipped)" in result.stdout
    assert "Photo: 32 records (0 skipped, 1 held out)" in result.stdout
    image = tf.io.decode_png(out.read_bytes())
    height, width, channels = image.shape
    assert channels in (3, 4)
    assert 500 <= width <= 3000 and 500 <= height <= 3000
    pixels = image.numpy()[..., :3]
    assert pixels.std() > 20  # Pictures and plots, not a blank canvas.


def test_cli_missing_data_dir_exits_2_naming_the_path(repo_root, tmp_path):
    missing = tmp_path / "no_such_data"
    out = tmp_path / "report.png"
    result = run_cli(repo_root, f"--data_dir={missing}", f"--out={out}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"error: --data_dir={missing}: no such directory"
    assert not out.exists()


def test_cli_bad_record_exits_2_naming_the_file(repo_root, sample_dir, tmp_path):
    bad = tmp_path / "photos" / "broken.jpg"
    bad.parent.mkdir()
    bad.write_bytes(b"not an image at all")
    result = run_cli(repo_root, f"--monet={sample_dir / 'monet_tfrec'}", f"--photo={bad.parent}",
                     f"--out={tmp_path / 'report.png'}")
    assert result.returncode == 2
    assert str(bad) in result.stderr and "not a decodable image" in result.stderr


def _solid_images(folder, colour, sizes, mode="RGB"):
    folder.mkdir()
    for i, (height, width) in enumerate(sizes):
        image = np.broadcast_to(np.array(colour, np.uint8), (height, width, 3))
        if mode == "L":
            image = image[..., :1]
        tf.io.write_file(str(folder / f"{i:02d}.png"), tf.io.encode_png(image))


def test_histograms_counts_and_sizes_are_exact(tmp_path):
    _solid_images(tmp_path / "monet", (255, 0, 10), [(80, 100), (64, 64), (120, 90)])
    _solid_images(tmp_path / "photo", (77, 77, 77), [(70, 70)] * 5, mode="L")  # Grayscale PNGs.
    sources = data.find_sources(monet=str(tmp_path / "monet"), photo=str(tmp_path / "photo"))
    report = data.validate(sources, heldout_fraction=0.2)
    out = tmp_path / "report.png"
    looks = inspect(sources, report, str(out), num_images=2, hist_images=300, image_size=32)

    monet, photo = looks["monet"], looks["photo"]
    assert monet.samples.shape == (2, 32, 32, 3) and photo.samples.shape == (2, 32, 32, 3)
    assert monet.histogram_images == 3 and photo.histogram_images == 5
    pixels = 32 * 32
    assert monet.histogram[0, 255] == monet.histogram[1, 0] == monet.histogram[2, 10] == 3 * pixels
    assert monet.histogram.sum() == 3 * 3 * pixels
    assert (photo.histogram[:, 77] == 5 * pixels).all()
    np.testing.assert_allclose(photo.channel_means(), [77, 77, 77])
    assert sorted(map(tuple, monet.sizes)) == [(64, 64), (80, 100), (120, 90)]
    assert tf.io.decode_png(out.read_bytes()).shape[0] > 300


def test_seed_chooses_the_samples(sample_dir, tmp_path):
    sources = data.find_sources(str(sample_dir))
    report = data.validate(sources)
    first = inspect(sources, report, str(tmp_path / "a.png"), num_images=6, hist_images=6,
                    image_size=32, seed=0)
    again = inspect(sources, report, str(tmp_path / "b.png"), num_images=6, hist_images=6,
                    image_size=32, seed=0)
    other = inspect(sources, report, str(tmp_path / "c.png"), num_images=6, hist_images=6,
                    image_size=32, seed=1)
    np.testing.assert_array_equal(first["photo"].samples, again["photo"].samples)
    assert not np.array_equal(first["photo"].samples, other["photo"].samples)
    assert first["photo"].histogram.sum() == 6 * 3 * 32 * 32


def test_bad_arguments_are_named(sample_dir, tmp_path):
    sources = data.find_sources(str(sample_dir))
    report = data.validate(sources)
    with pytest.raises(data.DataError, match="--num_images=0: must be at least 1"):
        inspect(sources, report, str(tmp_path / "x.png"), num_images=0)
    with pytest.raises(data.DataError, match=r"--out=.*report\.jpg: the report is a PNG"):
        inspect(sources, report, str(tmp_path / "report.jpg"))
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(data.DataError, match="is a directory"):
        inspect(sources, report, str(tmp_path / "dir.png"))


def test_rows_are_labelled_by_domain_and_the_sources_sit_in_a_footer(tmp_path):
    """No text naming the photo source may stand above the paintings; both sources are in one
    footer under everything else; each row's label sits left of its own row."""
    _solid_images(tmp_path / "monet", (200, 40, 40), [(64, 64)] * 4)
    _solid_images(tmp_path / "photo", (40, 40, 200), [(64, 64)] * 4)
    sources = data.find_sources(monet=str(tmp_path / "monet"), photo=str(tmp_path / "photo"))
    report = data.validate(sources)
    looks = inspect(sources, report, str(tmp_path / "report.png"), num_images=4, image_size=32)
    fig = report_figure(sources, report, looks, image_size=32)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()

    def box(artist):
        return artist.get_window_extent(renderer)

    sample_axes = [ax for ax in fig.axes if ax.get_images()]
    rows = {"Monet": [], "Photo": []}
    for ax in sample_axes:  # The Monet row is drawn first, above the photos.
        rows["Monet" if ax.get_images()[0].get_array()[0, 0, 0] == 200 else "Photo"].append(box(ax))
    assert len(rows["Monet"]) == len(rows["Photo"]) == 4
    texts = [t for t in fig.findobj(Text) if t.get_text()]
    photo_source, monet_source = sources.photo.describe(), sources.monet.describe()
    for text in texts:  # Under every axes, so above neither the paintings nor the photos.
        if str(tmp_path / "photo") in text.get_text():
            assert box(text).y1 <= min(box(ax).y0 for ax in fig.axes), text.get_text()
    (footer,) = [t for t in texts if photo_source in t.get_text()]
    assert monet_source in footer.get_text()
    for label, boxes in rows.items():
        (text,) = [t for t in texts if t.get_text() == label]
        label_box = box(text)
        assert label_box.x1 <= min(b.x0 for b in boxes), label
        assert min(b.y0 for b in boxes) <= (label_box.y0 + label_box.y1) / 2 <= max(
            b.y1 for b in boxes), label
