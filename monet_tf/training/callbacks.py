"""Keras callbacks of the training job: progress, stopping, sample grids, loss curves, wandb.

Each callback does one thing and reads the model through its domain-named generators
(`photo_to_monet`, and `monet_to_photo` for CycleGAN; `noise_to_monet` for DCGAN). Checkpointing
is not a callback: the training loop in `monet_tf.training.job` saves between epochs, where the
state is known to be whole.
"""

from __future__ import annotations

import csv
import io
import math
import os
import signal
import socket
import threading
import time
from typing import Callable

import keras
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from monet_tf.runtime import translate as runtime_translate  # noqa: E402
from monet_tf.models.dcgan import fixed_noise  # noqa: E402
from monet_tf.runtime import disk  # noqa: E402


class EpochProgbar(keras.callbacks.ProgbarLogger):
    """The Keras progress bar, showing the true epoch out of the whole run.

    The trainer calls `fit` once per epoch (so that every epoch's data is a function of the seed
    and the epoch alone, and resuming is exact); plain Keras would print "Epoch 3/3".
    """

    def __init__(self, total_epochs: int):
        super().__init__()
        self.total_epochs = total_epochs

    def set_params(self, params):
        super().set_params(params)
        self.epochs = self.total_epochs

    def on_train_batch_end(self, batch, logs=None):
        # Keras reports the last step a `steps_per_execution` group could reach ("8/5" for a
        # 5-step epoch in groups of 4); the group itself stopped where the epoch's data ended.
        if self.target is not None:
            batch = min(batch, self.target - 1)
        super().on_train_batch_end(batch, logs)


class NonFiniteLossGuard(keras.callbacks.Callback):
    """Stops training at the first NaN or infinite metric and remembers where it happened."""

    def __init__(self):
        super().__init__()
        self.epoch = 0
        self.bad: tuple[int, int, str, float] | None = None  # (epoch, batch, metric, value)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        for name, value in (logs or {}).items():
            value = float(value)
            if not math.isfinite(value):
                self.bad = (self.epoch, batch, name, value)
                self.model.stop_training = True
                return


def _alone(flags: tuple[bool, ...]) -> tuple[bool, ...]:
    return tuple(flags)


class TimeBudget:
    """The run's deadline (time.monotonic()); `reached` once the run's processes agreed that it
    passed (StopOnSignal's agreement, after a step)."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.reached = False

    def passed(self) -> bool:
        return time.monotonic() >= self.deadline


class StopOnSignal(keras.callbacks.Callback):
    """The first SIGINT/SIGTERM stops training after the current step, so the loop can save a
    checkpoint; a second one exits at once, non-zero, saying that nothing more was saved.

    Python runs a signal handler only when its main thread is between bytecodes, so while that
    thread is in native code (XLA compiling the step, a long TensorFlow op) the handler waits,
    and two signals there fold into one. The signal numbers are therefore also written to a
    socket (signal.set_wakeup_fd, from C, one byte per signal as it arrives) that a daemon
    thread reads and counts: XLA and TensorFlow release the GIL while they work, so it answers
    at once. The Python handler only marks the stop, so that a signal sent from the main thread
    stops the step it arrived in, as before. `last_checkpoint` names the checkpoint a rerun
    would resume from (None: none yet).

    After every step one agreement of the run's processes covers both reasons to stop, a
    signal and the `clock` (a TimeBudget) passing: `agree(flags)` is, for each flag, True on
    every process of the run when True on any (Runtime.any_process_each, one collective), so
    that all stop after the same step however far apart the signals or clocks reach them.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, last_checkpoint: Callable[[], str | None] = lambda: None, agree=_alone,
                 clock: TimeBudget | None = None):
        super().__init__()
        self.signal_name: str | None = None
        self.last_checkpoint = last_checkpoint
        self.agree = agree
        self.clock = clock
        self._previous: dict[int, object] = {}
        self._previous_wakeup_fd = -1
        self._sockets: tuple[socket.socket, socket.socket] | None = None
        self._count = 0

    def install(self) -> None:
        """Call from the main thread (Python's rule for signal handlers)."""
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        self._sockets = (reader, writer)
        for signum in self.SIGNALS:
            # Installing a Python handler is also what makes C write to the wakeup fd.
            self._previous[signum] = signal.signal(signum, self._handle)
        self._previous_wakeup_fd = signal.set_wakeup_fd(writer.fileno(),
                                                        warn_on_full_buffer=False)
        threading.Thread(target=self._watch, args=(reader,), name="monet_tf signals",
                         daemon=True).start()

    def uninstall(self) -> None:
        if self._sockets is None:
            return
        signal.set_wakeup_fd(self._previous_wakeup_fd)
        for signum, handler in self._previous.items():
            # None: a handler installed outside Python (JAX's preemption notifier); the
            # default is the closest Python can restore.
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        self._previous = {}
        reader, writer = self._sockets
        writer.close()  # The watching thread reads end-of-file and ends; then the reader closes.
        self._sockets = None

    def _watch(self, reader: socket.socket) -> None:
        with reader:
            while data := reader.recv(64):
                for signum in data:
                    if signum in self.SIGNALS:
                        self._received(signal.Signals(signum).name, signum)

    def _handle(self, signum, frame) -> None:
        if self.signal_name is None:
            self.signal_name = signal.Signals(signum).name

    def _received(self, name: str, signum: int) -> None:
        self._count += 1
        if self._count == 1:
            if self.signal_name is None:
                self.signal_name = name
            print(f"\n{name} received: stopping after this step and saving a checkpoint "
                  "(send it again to exit at once without saving).", flush=True)
            return
        last = self.last_checkpoint()
        lost = (f"the steps since {last} are lost (a rerun resumes from it)" if last else
                "no checkpoint was saved yet (a rerun starts from the beginning)")
        # Straight to fd 2 and out: no lock that the main thread might hold is taken.
        os.write(2, f"\nsecond {name}: exiting now without saving; {lost}.\n".encode())
        os._exit(130 if signum == signal.SIGINT else 143)

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def _signalled(self, anywhere: bool) -> bool:
        if anywhere:
            self.signal_name = self.signal_name or "SIGTERM to another process"
        return anywhere

    def agreed(self) -> bool:
        """Whether any process of the run got a signal (each calls this at the same point)."""
        return self._signalled(self.agree((self.requested,))[0])

    def on_train_batch_end(self, batch, logs=None):
        clock = self.clock
        signalled, late = self.agree((self.requested, clock is not None and clock.passed()))
        if late:
            clock.reached = True
        if self._signalled(signalled) or late:
            self.model.stop_training = True


def tensorboard_installed() -> bool:
    """Whether tf.summary can write: its scalar and image summaries live in the tensorboard
    package, which tensorflow(-cpu) 2.21 no longer installs."""
    try:
        from tensorboard.summary import v2  # noqa: F401
    except ImportError:
        return False
    return True


def translate(generator: keras.Model, images: tf.Tensor) -> np.ndarray:
    """A grid's images: the generator's of `images` on this process's devices (process 0 of a
    multi-process run draws grids alone), as float32 numpy in [-1, 1]."""
    images = runtime_translate.translate(generator, np.asarray(images), this_process=True)
    return np.asarray(images, dtype=np.float32)


GENERATED_PER_ROW = 3  # noise_to_monet's paintings beside each real one in a DCGAN's grid.


def sample_grid(model, photos: tf.Tensor, monets: tf.Tensor, title: str) -> plt.Figure:
    """Rows of photo | Monet-style | cycled back, then Monet | photo-style | cycled back.

    A family with no monet_to_photo (CUT, FastCUT) has rows of photo | Monet-style only, and
    the title says why. A family that generates from noise (DCGAN) has rows of a real
    Monet | GENERATED_PER_ROW paintings from fixed noise (models.dcgan.fixed_noise); its photos
    are unused.
    """
    if "noise_to_monet" in model.GENERATORS:
        generator = model.noise_to_monet
        noise = fixed_noise(len(monets) * GENERATED_PER_ROW, int(generator.input_shape[-1]))
        made = translate(generator, noise).reshape(len(monets), GENERATED_PER_ROW,
                                                   *generator.output_shape[1:])
        rows = [(m, *row) for m, row in zip(np.asarray(monets), made)]
        headers = [("Monet", *["noise_to_monet"] * GENERATED_PER_ROW)]
        return _image_grid(rows, headers, len(monets),
                           f"{title} ({model.name}: noise_to_monet from fixed noise)")
    to_monet = translate(model.photo_to_monet, photos)
    if "monet_to_photo" not in model.GENERATORS:
        rows = list(zip(np.asarray(photos), to_monet))
        headers = [("photo", "photo_to_monet")]
        title = f"{title} ({model.name}: one-way, no monet_to_photo)"
    else:
        photo_cycle = translate(model.monet_to_photo, to_monet)
        to_photo = translate(model.monet_to_photo, monets)
        monet_cycle = translate(model.photo_to_monet, to_photo)
        rows = [(p, m, c) for p, m, c in zip(np.asarray(photos), to_monet, photo_cycle)]
        rows += [(m, p, c) for m, p, c in zip(np.asarray(monets), to_photo, monet_cycle)]
        headers = [("photo", "photo_to_monet", "cycled"), ("Monet", "monet_to_photo", "cycled")]
    return _image_grid(rows, headers, len(photos), title)


def _image_grid(rows, headers, n_first: int, title: str) -> plt.Figure:
    """Images in [-1, 1] as a grid; headers[0] above row 0, headers[1] above row n_first."""
    columns = len(rows[0])
    # Constrained layout keeps room for the suptitle above the first row's column headers.
    fig, axes = plt.subplots(len(rows), columns, figsize=(2 * columns, 2 * len(rows)),
                             squeeze=False, layout="constrained")
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            ax = axes[r, c]
            ax.imshow(np.clip((image + 1.0) / 2.0, 0.0, 1.0))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 or (r == n_first and len(headers) > 1):
                ax.set_title(headers[0 if r == 0 else 1][c], fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


class SampleGrid(keras.callbacks.Callback):
    """Every N epochs, translates fixed held-out photos and Monet paintings (a DCGAN: generates
    from fixed noise) and saves a PNG grid (see sample_grid).

    The grid also goes to TensorBoard (as an image) and to wandb when a run is active.
    """

    def __init__(self, photos: tf.Tensor, monets: tf.Tensor, out_dir: str, every: int,
                 tensorboard_dir: str | None = None, wandb_run=None):
        super().__init__()
        self.photos, self.monets = photos, monets
        self.out_dir, self.every = out_dir, every
        self.wandb_run = wandb_run
        self.writer = tf.summary.create_file_writer(tensorboard_dir) if tensorboard_dir else None
        tf.io.gfile.makedirs(out_dir)

    def on_epoch_end(self, epoch, logs=None):
        # An epoch cut short (a signal, the time budget) gets no grid: the save comes first.
        if self.every <= 0 or (epoch + 1) % self.every or self.model.stop_training:
            return
        path = os.path.join(self.out_dir, f"epoch_{epoch + 1:04d}.png")
        fig = sample_grid(self.model, self.photos, self.monets, f"epoch {epoch + 1}")
        png = _png(fig)
        disk.write_bytes(path, png, "the sample grid")
        if self.writer is not None:
            image = tf.io.decode_png(png, channels=3)
            with self.writer.as_default():
                tf.summary.image("samples", image[None], step=epoch + 1)
            self.writer.flush()
        if self.wandb_run is not None:
            import wandb

            self.wandb_run.log({"samples": wandb.Image(path)}, step=epoch + 1)


# Panels of the loss-curve figure, each on its own scale (gen_total_loss would flatten the rest).
LOSS_PANELS = (
    ("generators", ("photo_gen_loss", "monet_gen_loss", "gen_total_loss")),
    ("critics", ("photo_critic_loss", "monet_critic_loss")),
    ("cycle / identity", ("cycle_loss", "identity_loss")),
    ("PatchNCE", ("nce_loss", "identity_nce_loss")),
)
OTHER_PANEL = "other"


def _read_csv(path: str) -> tuple[list[str] | None, list[list[str]]]:
    """(header, rows) of a CSV file; (None, []) when it is empty."""
    with tf.io.gfile.GFile(path) as f:
        rows = [row for row in csv.reader(f) if row]
    return (rows[0], rows[1:]) if rows else (None, [])


def _rewrite_csv(path: str, header: list[str], rows: list[list[str]]) -> None:
    """The whole file again: `header`, then each row, "NA" in the columns it lacks."""
    with tf.io.gfile.GFile(path, "w") as f:
        csv.writer(f, lineterminator="\n").writerows(
            [header, *(row + ["NA"] * (len(header) - len(row)) for row in rows)])


class MetricsCSV(keras.callbacks.CSVLogger):
    """Keras' CSVLogger appending across resumes, in the file's own column order, and the one
    writer of metrics.csv. A resumed run may log other columns than the rows before it (scores
    turned on or off, say): new ones are added to the file first ("NA" in the earlier rows), a
    missing one gets "NA", instead of rows that no longer match the header, which break every
    reader of the file. `drop_epochs_from` removes the rows a resumed run logs again."""

    def __init__(self, filename: str):
        super().__init__(filename, append=True)

    @staticmethod
    def drop_epochs_from(path: str, epochs_done: int) -> None:
        """Drops the rows of epochs that the restored checkpoint does not contain."""
        if not tf.io.gfile.exists(path):
            return
        header, rows = _read_csv(path)
        if header is not None:
            _rewrite_csv(path, header, [row for row in rows if int(row[0]) < epochs_done])

    def on_epoch_end(self, epoch, logs=None):
        if self.keys is None and not self.append_header:  # Appending to an earlier run's rows.
            keys = sorted(logs or {})
            if not any(key.startswith("val_") for key in keys):  # As CSVLogger names them.
                keys += [f"val_{key}" for key in keys]
            header, rows = _read_csv(self.filename)
            header = header or ["epoch"]
            columns = header[1:] + [key for key in keys if key not in header]
            if len(columns) > len(header) - 1:
                self.csv_file.close()
                _rewrite_csv(self.filename, ["epoch", *columns], rows)
                self.on_train_begin()  # Reopens the file to append, as CSVLogger does.
            self.keys = columns
        super().on_epoch_end(epoch, logs)


def _csv_value(text: str | None) -> float:
    """A CSVLogger cell as a float: NaN for "NA" (a metric an epoch did not report) or blank."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def loss_panels(rows: list[dict[str, str]]) -> list[tuple[str, dict[str, list[float]]]]:
    """(panel title, {loss column: values per row}) for the panels that have any data.

    Only loss columns with at least one number: CSVLogger's empty `val_*` columns are left out,
    and losses no panel names go to the "other" panel rather than being dropped.
    """
    columns = {}
    for name in rows[0] if rows else ():
        if name.startswith("val_") or not name.endswith("loss"):
            continue
        values = [_csv_value(row.get(name)) for row in rows]
        if not all(math.isnan(v) for v in values):
            columns[name] = values
    named = {name for _, names in LOSS_PANELS for name in names}
    panels = [(title, {n: columns[n] for n in names if n in columns})
              for title, names in LOSS_PANELS]
    panels.append((OTHER_PANEL, {n: v for n, v in columns.items() if n not in named}))
    return [(title, curves) for title, curves in panels if curves]


def loss_curves_figure(rows: list[dict[str, str]]) -> plt.Figure | None:
    """One panel per group of losses against the epoch; None when there is nothing to plot."""
    panels = loss_panels(rows)
    if not panels:
        return None
    epochs = [int(row["epoch"]) + 1 for row in rows]
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 2.6 * len(panels)), sharex=True,
                             squeeze=False, layout="constrained")
    for ax, (title, curves) in zip(axes[:, 0], panels):
        for name, values in curves.items():
            ax.plot(epochs, values, marker="o", markersize=3, label=name)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[-1, 0].set_xlabel("epoch")
    axes[-1, 0].xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    return fig


def plot_loss_curves(csv_path: str, out_path: str) -> None:
    """Draws the metrics CSV's losses (see loss_curves_figure) into a PNG at `out_path`."""
    with tf.io.gfile.GFile(csv_path) as f:
        rows = list(csv.DictReader(f))
    fig = loss_curves_figure(rows)
    if fig is not None:
        disk.write_bytes(out_path, _png(fig), "the loss curves")


def _png(fig: plt.Figure) -> bytes:
    """The figure as PNG bytes, closed: written in one piece, the size a write needs is known."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


class LossCurves(keras.callbacks.Callback):
    """Redraws the loss-curve PNG from the metrics CSV after every epoch.

    Must come after the CSVLogger in the callback list so the epoch's row is already written.
    """

    def __init__(self, csv_path: str, out_path: str):
        super().__init__()
        self.csv_path, self.out_path = csv_path, out_path

    def on_epoch_end(self, epoch, logs=None):
        plot_loss_curves(self.csv_path, self.out_path)


class WandbMetrics(keras.callbacks.Callback):
    """Logs the epoch's metrics and learning rate to an active wandb run."""

    def __init__(self, run):
        super().__init__()
        self.run = run

    def on_epoch_end(self, epoch, logs=None):
        self.run.log({k: float(v) for k, v in (logs or {}).items()}, step=epoch + 1)
