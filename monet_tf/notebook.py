"""What the notebooks in notebooks/ call: training with its output streamed into the cell, and a
run's workdir shown inline (the latest sample grid, the loss curves, the scores, a few
translations, the submission's checks).

The kernel imports neither TensorFlow nor JAX: training and the zip's check run in processes of
their own, so a TPU (one process at a time) stays free for the next run of the training cell.
Each view comes back as an IPython display object (figures as PNG bytes in an `Image`, which
every notebook front end shows), or None, which a cell's last line shows as nothing.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import os
import pathlib
import signal
import subprocess
import sys
from typing import Sequence

SCORES = ("mifid", "fid", "memorization", "card_score", "card_swd", "card_palette",
          "card_spectrum", "card_checkerboard", "card_ssim", "card_memorization")
KAGGLE_IMAGES = (7_000, 10_000)  # monet_tf.inference.predict's KAGGLE_MIN/MAX_IMAGES.


class CommandFailed(RuntimeError):
    """A command the notebook ran exited non-zero; its output is in the cell above."""


def run(command: Sequence[str], env: dict[str, str] | None = None) -> None:
    """Runs `command`, printing its output (stderr merged) line by line as it comes.

    The notebook's Stop (KeyboardInterrupt here) reaches the command as one SIGINT, on which
    run_train.py saves a checkpoint and stops; its last lines are printed before the interrupt
    goes on. It runs in a session of its own, so that a front end signalling the kernel's
    process group does not add a second SIGINT (run_train.py's "exit now, save nothing")."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1, env=env, start_new_session=True) as process:
        try:
            for line in process.stdout:
                print(line, end="", flush=True)
        except KeyboardInterrupt:
            process.send_signal(signal.SIGINT)
            for line in process.stdout:
                print(line, end="", flush=True)
            raise
    if process.returncode:
        raise CommandFailed(f"{pathlib.Path(command[1]).name} exited with code "
                            f"{process.returncode}: what it said is above")


def train_command(home: str | os.PathLike, config: str, strategy: str, workdir: str,
                  data_dir: str = "", time_budget: str = "", inception_weights: str = "",
                  submission: str = "", overrides: Sequence[str] = ()) -> list[str]:
    """`python run_train.py ...` from monet_tf's checkout or offline bundle `home`, one line per
    epoch; a relative `config` is read from `home`. Empty settings stay the config's own."""
    home = pathlib.Path(home)
    config_path = pathlib.Path(config)
    if not config_path.is_absolute():
        config_path = home / config_path
    command = [sys.executable, str(home / "run_train.py"), f"--config={config_path}",
               f"--strategy={strategy}", f"--workdir={workdir}", "--progress=epoch"]
    command += [f"--{flag}={value}" for flag, value in (("data_dir", data_dir),
                                                         ("submission", submission)) if value]
    command += [f"--config.{field}={value}" for field, value in (
        ("train.time_budget", time_budget), ("eval.inception_weights", inception_weights))
        if value]
    return command + list(overrides)


def train(home: str | os.PathLike, **settings) -> None:
    """Trains (or resumes) the run: see train_command for the settings."""
    command = train_command(home, **settings)
    print("$ python " + " ".join(command[1:]), flush=True)
    run(command)


def latest_grid(workdir: str):
    """The newest sample grid (samples/epoch_NNNN.png): held-out photos and paintings, each
    beside its translation."""
    grids = sorted(pathlib.Path(workdir, "samples").glob("epoch_*.png"))
    if not grids:
        print(f"no sample grid in {workdir}/samples yet (config train.sample_every)")
        return None
    print(f"{grids[-1]} (of {len(grids)})")
    return _image(grids[-1].read_bytes())


def _number(text: str | None) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _metrics(workdir: str) -> list[dict[str, str]]:
    path = pathlib.Path(workdir, "metrics.csv")
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def loss_curves(workdir: str):
    """The losses of metrics.csv by epoch: the generators' in one panel, the critics' in the
    other (a GAN's losses trade off; neither falling alone means much)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    rows = _metrics(workdir)
    columns = [name for name in (rows[0] if rows else ()) if name.endswith("loss")
               and not name.startswith("val_")
               and not all(math.isnan(_number(row[name])) for row in rows)]
    if not columns:
        print(f"no losses in {workdir}/metrics.csv yet")
        return None
    epochs = [int(row["epoch"]) + 1 for row in rows]
    panels = [("critics", [c for c in columns if "critic" in c]),
              ("generators", [c for c in columns if "critic" not in c])]
    panels = [(title, names) for title, names in panels if names]
    figure = Figure(figsize=(9, 3), layout="constrained")
    for axes, (title, names) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
        for name in names:
            axes.plot(epochs, [_number(row[name]) for row in rows], marker="o", markersize=3,
                      label=name)
        axes.set(title=title, xlabel="epoch", ylabel="loss")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    return _figure(figure)


def score_table(workdir: str):
    """The scored epochs of metrics.csv (MiFID, the quality card) as an HTML table, and which
    epoch export/best holds; None when nothing was scored."""
    rows = _metrics(workdir)
    keys = [key for key in SCORES if rows and key in rows[0]
            and not all(math.isnan(_number(row[key])) for row in rows)]
    scored = [row for row in rows if any(not math.isnan(_number(row[key])) for key in keys)]
    if not scored:
        print("no scores: the run scores every eval.every epochs (0: off)")
        return None
    best = pathlib.Path(workdir, "export", "best", "score.json")
    caption = ""
    if best.is_file():
        score = json.loads(best.read_text())
        by = score.get("by", "mifid")
        value = score.get("mifid" if by == "mifid" else "card_score")
        caption = (f"export/best: epoch {score['epoch']}, by "
                   f"{'MiFID' if by == 'mifid' else 'the quality card score'} {value:.3f} "
                   "(lower is better)")
    head = "".join(f"<th>{html.escape(key)}</th>" for key in ["epoch", *keys])
    body = "".join(
        "<tr>" + f"<td>{int(row['epoch']) + 1}</td>"
        + "".join(f"<td>{_number(row[key]):.3f}</td>" for key in keys) + "</tr>"
        for row in scored)
    from IPython.display import HTML

    return HTML(f"<table><caption>{html.escape(caption)}</caption><tr>{head}</tr>{body}</table>")


def translations(workdir: str, count: int = 4):
    """The photos the run translated through its export at the end (demo/), each above its
    painting; a DCGAN's paintings from noise alone."""
    from PIL import Image

    demo = pathlib.Path(workdir, "demo")
    photos = sorted(demo.glob("*_photo.jpg"))[:count]
    columns = ([[p, p.with_name(p.name.replace("_photo", "_monet"))] for p in photos]
               or [[p] for p in sorted(demo.glob("*.jpg"))[:count]])
    if not columns:
        print(f"no translations in {demo}: the run writes them after training")
        return None
    images = [[Image.open(path).convert("RGB") for path in column] for column in columns]
    side = max(image.width for column in images for image in column)
    sheet = Image.new("RGB", (side * len(images), side * len(images[0])), "white")
    for x, column in enumerate(images):
        for y, image in enumerate(column):
            sheet.paste(image.resize((side, side)), (x * side, y * side))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    print(f"{demo}: {'photos (top) and their paintings' if photos else 'paintings'}")
    return _image(buffer.getvalue())


def check_submission(path: str) -> int:
    """Checks the zip as Kaggle will (monet_tf.inference.submission.check_zip, in a process of
    its own: it loads TensorFlow) and says whether it can be submitted; the image count."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no submission was written (config submission.path, "
                                "or run_train.py's --submission)")
    check = ("import sys, zipfile\n"
             "from monet_tf.inference.submission import SubmissionError, check_zip\n"
             "count = len(zipfile.ZipFile(sys.argv[1]).namelist())\n"
             f"low, high = {KAGGLE_IMAGES}\n"
             "try:\n"
             "    print(check_zip(sys.argv[1], None if low <= count <= high else count))\n"
             "except SubmissionError as e:\n"
             "    sys.exit(str(e))\n")
    result = subprocess.run([sys.executable, "-c", check, path], capture_output=True, text=True,
                            env={**os.environ, "KERAS_BACKEND": "tensorflow",
                                 "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "3"})
    if result.returncode:
        said = result.stderr.strip().splitlines() or [f"exit code {result.returncode}"]
        raise CommandFailed(f"{path} fails Kaggle's checks: {said[-1]}")
    count = int(result.stdout.split()[-1])
    size = os.path.getsize(path) / 2**20
    print(f"{path}: {count:,} uniquely named 256x256 RGB JPEGs at the top level, {size:.1f} MiB")
    low, high = KAGGLE_IMAGES
    if low <= count <= high:
        print(f"ready to submit: Kaggle takes {low:,} to {high:,} images")
    else:
        print(f"not a submission: Kaggle takes {low:,} to {high:,} images (a run on the sample "
              "with submission.allow_any_count)")
    return count


def _figure(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return _image(buffer.getvalue())


def _image(data: bytes):
    from IPython.display import Image

    return Image(data=data, format="png")
