"""monet_tf.training.callbacks' figures: loss curves from a real CSVLogger file, the sample grid's
layout."""

import csv
import math

import keras
import matplotlib.pyplot as plt
import numpy as np
import pytest
import tensorflow as tf

from monet_tf.training.callbacks import (MetricsCSV, loss_curves_figure, plot_loss_curves,
                                         sample_grid)
from monet_tf.config import base_config
from monet_tf.models import METRICS, build_cyclegan
from tests import tiny_config

# Its module fixture serves every test here: one xdist worker runs them all (--dist loadgroup).
pytestmark = pytest.mark.xdist_group("callbacks_plots")


def write_metrics_csv(path, epochs_logs: list[dict[str, float]]) -> list[dict[str, str]]:
    """Writes the epochs' logs with Keras' own CSVLogger (which adds empty val_* columns)."""
    logger = keras.callbacks.CSVLogger(str(path), append=True)
    logger.on_train_begin()
    for epoch, logs in enumerate(epochs_logs):
        logger.on_epoch_end(epoch, logs)
    logger.on_train_end()
    with open(path) as f:
        return list(csv.DictReader(f))


def log_run(logger, first_epoch, epochs_logs) -> list[dict[str, str]]:
    logger.on_train_begin()
    for epoch, logs in enumerate(epochs_logs, first_epoch):
        logger.on_epoch_end(epoch, logs)
    logger.on_train_end()
    with open(logger.filename) as f:
        return list(csv.DictReader(f))


def test_a_resume_that_logs_other_columns_widens_the_csv_instead_of_misaligning_it(tmp_path):
    """Scores turned on at a resume, then off at the next: every row keeps its values under its
    own columns, "NA" where it had none, and the loss curves still plot."""
    path = tmp_path / "metrics.csv"
    losses = epoch_logs(["gen_total_loss", "cycle_loss"], epochs=4)
    log_run(MetricsCSV(str(path)), 0, losses[:2])
    scored = [{**logs, "mifid": 50.0 - epoch} for epoch, logs in enumerate(losses[2:3])]
    log_run(MetricsCSV(str(path)), 2, scored)
    rows = log_run(MetricsCSV(str(path)), 3, losses[3:])
    assert [row["epoch"] for row in rows] == ["0", "1", "2", "3"]
    assert [row["mifid"] for row in rows] == ["NA", "NA", "50.0", "NA"]
    assert [float(row["cycle_loss"]) for row in rows] == [logs["cycle_loss"] for logs in losses]
    assert all(None not in row for row in rows)  # No value without a column.
    plot_loss_curves(str(path), str(tmp_path / "curves.png"))
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_a_resume_drops_the_epochs_its_checkpoint_lacks_and_logs_them_again(tmp_path):
    """The rows after the restored checkpoint's epoch go (the header with them kept), and the
    resumed run's rows take their places under the same columns."""
    path = tmp_path / "metrics.csv"
    MetricsCSV.drop_epochs_from(str(path), 1)  # No file yet: nothing to do.
    assert not path.exists()
    losses = epoch_logs(["gen_total_loss", "cycle_loss"], epochs=4)
    log_run(MetricsCSV(str(path)), 0, losses[:2])
    log_run(MetricsCSV(str(path)), 2, [{**losses[2], "mifid": 40.0}])
    header = path.read_text().splitlines()[0]
    MetricsCSV.drop_epochs_from(str(path), 1)
    assert path.read_text().splitlines()[0] == header and "mifid" in header
    rows = log_run(MetricsCSV(str(path)), 1, losses[1:])
    assert [row["epoch"] for row in rows] == ["0", "1", "2", "3"]
    assert [row["mifid"] for row in rows] == ["NA"] * 4
    assert [float(row["cycle_loss"]) for row in rows] == [logs["cycle_loss"] for logs in losses]
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    MetricsCSV.drop_epochs_from(str(empty), 0)
    assert empty.read_text() == ""


def panels_of(fig) -> dict[str, list[str]]:
    """{panel title: legend labels} of a loss-curve figure."""
    return {ax.get_title(): [t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.axes}


def epoch_logs(names, epochs: int = 3) -> list[dict[str, float]]:
    """Falling losses, a different level per metric."""
    return [{name: 1.0 / (epoch + 1) + i for i, name in enumerate(names)}
            for epoch in range(epochs)]


def test_loss_curves_have_a_panel_per_group_and_no_val_columns(tmp_path):
    """gen_total_loss gets no axis with the critics; an unknown loss goes to "other"; scores and
    CSVLogger's val_* columns are not plotted."""
    logs = epoch_logs([*METRICS, "perceptual_loss"])
    for epoch in logs:
        epoch.update(mifid=math.nan, fid=math.nan, memorization=math.nan)
    rows = write_metrics_csv(tmp_path / "metrics.csv", logs)
    assert rows[0]["val_gen_total_loss"] == "NA"  # What CSVLogger writes without validation.

    fig = loss_curves_figure(rows)
    panels = panels_of(fig)
    plt.close(fig)
    assert list(panels) == ["generators", "critics", "cycle / identity", "other"]
    assert panels["generators"] == ["photo_gen_loss", "monet_gen_loss", "gen_total_loss"]
    assert panels["critics"] == ["photo_critic_loss", "monet_critic_loss"]
    assert panels["cycle / identity"] == ["cycle_loss", "identity_loss"]
    assert panels["other"] == ["perceptual_loss"]
    grouped = [label for title, labels in panels.items() if title != "other" for label in labels]
    assert sorted(grouped) == sorted(METRICS)  # Every loss the CycleGAN logs has its group.


def test_columns_without_numbers_and_empty_panels_are_left_out(tmp_path):
    logs = epoch_logs(["photo_gen_loss", "monet_gen_loss", "photo_critic_loss"])
    for epoch in logs:
        epoch.update(cycle_loss=math.nan, identity_loss=math.nan)  # Never a number.
    rows = write_metrics_csv(tmp_path / "metrics.csv", logs)
    fig = loss_curves_figure(rows)
    panels = panels_of(fig)
    plt.close(fig)
    assert panels == {"generators": ["photo_gen_loss", "monet_gen_loss"],
                      "critics": ["photo_critic_loss"]}


def test_plot_loss_curves_writes_the_panels_as_a_png(tmp_path):
    write_metrics_csv(tmp_path / "metrics.csv", epoch_logs(METRICS))
    out = tmp_path / "loss_curves.png"
    plot_loss_curves(str(tmp_path / "metrics.csv"), str(out))
    height, width, _ = tf.io.decode_png(out.read_bytes()).shape
    assert height > width  # Three panels stacked, each on its own scale.


@pytest.fixture(scope="module")
def cyclegan():
    return build_cyclegan(tiny_config.get_config(), steps_per_epoch=1, global_batch_size=2)


def test_sample_grid_title_clears_the_column_headers(cyclegan):
    """At the default 4 samples per domain (a tall figure) tight_layout let the two touch."""
    n = base_config().train.num_samples
    rng = np.random.default_rng(0)
    photos, monets = (rng.uniform(-1, 1, (n, 32, 32, 3)).astype(np.float32) for _ in range(2))
    fig = sample_grid(cyclegan, photos, monets, "epoch 1")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (title,) = [t for t in fig.texts if t.get_text() == "epoch 1"]
    title_box = title.get_window_extent(renderer)
    headers = [ax.title for ax in fig.axes[:3]]
    assert [h.get_text() for h in headers] == ["photo", "photo_to_monet", "cycled"]
    for header in headers:
        header_box = header.get_window_extent(renderer)
        assert not title_box.overlaps(header_box), header.get_text()
        assert title_box.y0 >= header_box.y1, header.get_text()  # Above, not beside.
    plt.close(fig)
