"""The training job through its real entry points: run_train.py and monet_tf.training.job in
subprocesses."""

import csv
import hashlib
import json
import os
import pathlib
import re
import runpy
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from monet_tf.models import precision_probe
from monet_tf.config import base_config
from monet_tf.models.cyclegan import METRICS
from monet_tf.models.precision_probe import ProbeShape
from tests import wandb_records

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "tiny_config.py"


def _env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(TF_CPP_MIN_LOG_LEVEL="2", WANDB_MODE="offline", WANDB_SILENT="true")
    env.update(extra)
    return env


def run_train(workdir, *flags, timeout=600, **env) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "run_train.py"), f"--config={TINY}", f"--workdir={workdir}",
           *flags]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env(**env))


def _files_digest(directory: pathlib.Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.iterdir()) if p.is_file()}


def test_every_config_uses_only_documented_fields():
    known = set(_flatten(base_config().to_dict()))
    configs = sorted((REPO / "configs").glob("*.py")) + [TINY]
    assert len(configs) >= 5
    for path in configs:
        cfg = runpy.run_path(str(path))["get_config"]()
        unknown = set(_flatten(cfg.to_dict())) - known
        assert not unknown, f"{path.name} sets fields base_config() does not document: {unknown}"


def _flatten(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci in readme, f"README.md must contain the test command CI runs: {ci}"


def test_unwritable_workdir_is_reported_before_training(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    started = time.monotonic()
    result = run_train(blocker / "run", timeout=120)
    assert result.returncode != 0
    assert "cannot be written" in result.stderr and str(blocker) in result.stderr
    assert "Epoch" not in result.stdout
    assert time.monotonic() - started < 120


# tests/tiny_config.py's precision probe as issue 19's Xeon timed it: bfloat16 the slower.
CACHED_PROBE = {"float32_ms": 12.0, "bfloat16_ms": 19.0, "measured": "2025-01-02"}


@pytest.fixture(scope="module")
def wandb_run(tmp_path_factory):
    """One epoch of the tiny CycleGAN logged to wandb offline, with tensorboard unimportable
    (as under tensorflow-cpu 2.21, which no longer installs it), `auto` precision, whose
    probe this machine has cached (CACHED_PROBE), and scores without Inception weights (the
    quality card alone): the wandb, TensorBoard, precision and card tests read it, and the NaN
    test resumes a copy of it."""
    workdir = tmp_path_factory.mktemp("wandb_run")
    shim = tmp_path_factory.mktemp("no_tensorboard")
    (shim / "sitecustomize.py").write_text('import sys\nsys.modules["tensorboard"] = None\n')
    cache = shim / "precision.json"
    key = precision_probe.cache_key(
        "tensorflow", ProbeShape.of(runpy.run_path(str(TINY))["get_config"]()))
    cache.write_text(json.dumps({"probes": {key: CACHED_PROBE}}))
    result = run_train(workdir, "--wandb", "--wandb_project=monet_tf_test",
                       "--wandb_run_name=tiny", "--config.train.decay_epochs=0",
                       "--config.train.mixed_precision=auto", "--verbosity=0",
                       "--config.eval.every=1", "--config.eval.num_images=4",
                       PYTHONPATH=os.pathsep.join((str(shim), str(REPO),
                                                   os.environ.get("PYTHONPATH", ""))),
                       MONET_TF_PRECISION_CACHE=str(cache))
    return workdir, result, cache


@pytest.mark.xdist_group("wandb_run")
def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, wandb_run):
    first, result, _ = wandb_run
    assert result.returncode == 0, result.stderr[-3000:]
    shutil.copytree(first, tmp_path, dirs_exist_ok=True)
    before = _files_digest(tmp_path / "checkpoints")
    # Same run, two more epochs, with a learning rate that blows the weights up at once.
    diverged = run_train(tmp_path, "--config.train.epochs=3", "--config.optim.lr=1e30",
                         "--config.train.decay_epochs=0")
    assert diverged.returncode == 3, diverged.stderr[-3000:]
    assert re.search(r"became (nan|inf|-inf)", diverged.stderr), diverged.stderr[-3000:]
    assert "Resuming" in diverged.stdout
    assert _files_digest(tmp_path / "checkpoints") == before


def interrupt(workdir, signum, *flags):
    """Starts the tiny training, sends `signum` once epoch 1 is logged (so mid-epoch 2 or later),
    and returns (process, stderr) when it has exited."""
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "run_train.py"), f"--config={TINY}", f"--workdir={workdir}",
         "--config.train.checkpoint_every=100", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    _wait_for(lambda: (workdir / "metrics.csv").exists(), proc, timeout=300)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=300)
    return proc, err


def assert_saved_before_exiting(workdir, proc, err, code):
    assert proc.returncode == code, err[-3000:]
    assert "rerun the same command to resume" in err
    step = int(tf.train.latest_checkpoint(str(workdir / "checkpoints")).rsplit("-", 1)[1])
    # The epoch the signal cut short drew no sample grid: the save came first.
    epoch = step // 3 + 1  # tiny_config: 3 steps per epoch
    assert step % 3 and not (workdir / "samples" / f"epoch_{epoch:04d}.png").exists()


def test_sigint_saves_before_exiting(tmp_path):
    """SIGTERM's twin is in the end-to-end test, which resumes from it."""
    proc, err = interrupt(tmp_path, signal.SIGINT, "--config.train.epochs=50")
    assert_saved_before_exiting(tmp_path, proc, err, 130)


@pytest.mark.parametrize("elsewhere, stopped_by", [((True, False), "signal"),
                                                  ((False, True), "clock"),
                                                  ((False, False), None)])
def test_a_step_agrees_on_a_signal_and_the_budget_in_one_collective(elsewhere, stopped_by):
    """After each step the run's processes agree once, on both reasons to stop; `agree` stands
    for Runtime.any_process_each where another process got the signal or saw its clock pass."""
    import keras

    from monet_tf.training.callbacks import StopOnSignal, TimeBudget

    asked = []

    def agree(flags):
        asked.append(tuple(flags))
        return tuple(mine or theirs for mine, theirs in zip(flags, elsewhere))

    clock = TimeBudget(time.monotonic() + 3600)
    stop = StopOnSignal(agree=agree, clock=clock)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.zeros((4, 2), np.float32)
    model.fit(x, x[:, :1], batch_size=1, epochs=1, callbacks=[stop], verbose=0)
    assert asked == [(False, False)] * (1 if stopped_by else 4)
    assert int(model.optimizer.iterations.numpy()) == len(asked)
    assert stop.requested == (stopped_by == "signal") and clock.reached == (stopped_by == "clock")
    if stopped_by == "signal":
        assert stop.signal_name == "SIGTERM to another process"


def signal_twice(proc, first, second, gap_s, timeout_s):
    """Sends `first`, then `second` gap_s later; returns (stdout, stderr, seconds from the second
    signal to the exit), failing the test if the process outlives it by timeout_s."""
    proc.send_signal(first)
    time.sleep(gap_s)
    proc.send_signal(second)
    sent = time.monotonic()
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {timeout_s} s after the second signal")
    return out, err, time.monotonic() - sent


NATIVE_WORK = """
import numpy as np
from monet_tf.training.callbacks import StopOnSignal

StopOnSignal(lambda: "runs/x/checkpoints/ckpt-7").install()
a = np.random.default_rng(0).standard_normal((6000, 6000))
print("ready", flush=True)
while True:
    b = a @ a  # Seconds in BLAS with the GIL released: no Python handler runs meanwhile.
"""


def test_a_second_signal_exits_at_once_while_the_main_thread_is_in_native_code():
    """As while XLA compiles or TensorFlow runs a long op: the main thread cannot run Python's
    signal handlers, yet the second signal ends the process at once and says what is lost.
    (The end-to-end twin, a JAX run compiling its step, is in tests/test_train_jax.py.)"""
    proc = subprocess.Popen([sys.executable, "-c", NATIVE_WORK], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    try:
        assert proc.stdout.readline() == "ready\n", proc.stderr.read()[-3000:]
        time.sleep(0.3)
        # A Ctrl-C after the SIGTERM.
        out, err, took = signal_twice(proc, signal.SIGTERM, signal.SIGINT, 0.5, timeout_s=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err[-3000:]
    assert took < 2, f"exited {took:.1f} s after the second signal"
    assert "SIGTERM received: stopping after this step and saving a checkpoint" in out
    assert err.strip().splitlines()[-1] == (
        "second SIGINT: exiting now without saving; the steps since runs/x/checkpoints/ckpt-7 "
        "are lost (a rerun resumes from it).")


def _wait_for(condition, proc, timeout):
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"training ended early: {proc.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting for training to start")
        time.sleep(0.2)


RESUME_SCRIPT = """
import json, os, signal, sys
import keras, runpy
from monet_tf.training import job as t

class KillAt(keras.callbacks.Callback):
    # SIGTERM to this process as the step (group of steps) after step kill_at starts, as a
    # user's kill would arrive: training stops when it ends.
    def __init__(self, kill_at):
        super().__init__()
        self.kill_at = kill_at
    def on_train_batch_begin(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.kill_at:
            os.kill(os.getpid(), signal.SIGTERM)

class CountSteps(keras.callbacks.Callback):
    first = None
    def on_train_batch_begin(self, batch, logs=None):
        if self.first is None:
            self.first = int(self.model.optimizer.iterations.numpy())

# Exporting (SavedModels, the demo) is not what these runs check: tests/test_export.py and the
# end-to-end test do. Without it the four cases take ~8 CPU-s less (94 -> 86, measured).
t.export = lambda run, runtime, model: None

for case in json.loads(sys.argv[2]):
    cfg = runpy.run_path(sys.argv[1])["get_config"]()
    cfg.train.deterministic = True
    cfg.loss.pool_size = 1  # Full after one step, so later steps draw from the pool's RNG.
    cfg.loss.diffaugment = "color,translation,cutout"
    cfg.update_from_flattened_dict(case["settings"])
    print("== case", case["name"])
    t.train(cfg, case["straight"], verbose=0)
    try:
        t.train(cfg, case["resumed"], verbose=0, extra_callbacks=[KillAt(case["kill_at"])])
        sys.exit("not interrupted")
    except t.TrainingStopped as e:
        print("stopped:", e)
    count = CountSteps()
    result = t.train(cfg, case["resumed"], verbose=0, extra_callbacks=[count])
    print("steps after resuming:", result.steps_done - count.first)
    print("wandb imported:", "wandb" in sys.modules, flush=True)  # three runs with wandb off
"""


def _checkpoint_arrays(prefix: str) -> dict:
    """Every array of a TF checkpoint by its object path, but the save counter."""
    reader = tf.train.load_checkpoint(prefix)
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
            if key != "_CHECKPOINTABLE_OBJECT_GRAPH" and not key.startswith("save_counter")}


RESUMES = {  # name: (settings, kill_at, saved, where, total)
    "one_step_per_execution": ({}, 3, 4, "epoch 2, step 1 of 3", 6),
    # Groups of 4 steps over 5-step epochs (4 + 1 each): a kill during epoch 2's first group
    # saves at step 9, and every epoch still ends on a multiple of 5.
    "four_steps_per_execution": ({"data.steps_per_epoch": 5, "train.steps_per_execution": 4,
                                  "train.epochs": 2, "train.decay_epochs": 1}, 5, 9,
                                 "epoch 2, step 4 of 5", 15),
    # CUT's heads, its three optimizers and both RNGs (DiffAugment's, the patch locations').
    "cut": ({"model.kind": "cut"}, 3, 4, "epoch 2, step 1 of 3", 6),
    "fastcut": ({"model.kind": "fastcut", "train.steps_per_execution": 2}, 3, 5,
                "epoch 2, step 2 of 3", 6),
}


@pytest.fixture(scope="module")
def resumes(tmp_path_factory) -> dict:
    """{case: its output}: for each case a straight run, a run SIGTERMed after step kill_at and
    its resume, every case in one process (one start-up of TensorFlow for all)."""
    root = tmp_path_factory.mktemp("resumes")
    cases = [{"name": name, "settings": settings, "kill_at": kill_at,
              "straight": str(root / name / "straight"), "resumed": str(root / name / "resumed")}
             for name, (settings, kill_at, *_) in RESUMES.items()]
    result = subprocess.run([sys.executable, "-c", RESUME_SCRIPT, str(TINY), json.dumps(cases)],
                            capture_output=True, text=True, timeout=1800, env=_env())
    assert result.returncode == 0, result.stderr[-4000:]
    sections = (section.split("\n", 1) for section in result.stdout.split("== case ")[1:])
    return {name: (root / name, out) for name, out in sections}


@pytest.mark.xdist_group("resumes")
@pytest.mark.parametrize("name", RESUMES)
def test_resumed_run_equals_uninterrupted_run(resumes, name):
    settings, kill_at, saved, where, total = RESUMES[name]
    folder, out = resumes[name]
    straight, resumed = folder / "straight", folder / "resumed"
    assert f"stopped: SIGTERM: saved {resumed}/checkpoints/ckpt-{saved} at step" in out, out
    assert f"Resuming from {resumed}/checkpoints/ckpt-{saved}: {where}." in out, out
    assert f"steps after resuming: {total - saved}" in out, out
    assert "wandb imported: False" in out  # wandb is not even imported when off
    a = _checkpoint_arrays(tf.train.latest_checkpoint(str(straight / "checkpoints")))
    b = _checkpoint_arrays(tf.train.latest_checkpoint(str(resumed / "checkpoints")))
    assert tf.train.latest_checkpoint(str(straight / "checkpoints")).endswith(f"ckpt-{total}")
    assert a.keys() == b.keys()
    # Every network, every optimizer's slots and step count, both pools and the RNG(s).
    parts = ("photo_to_monet", "monet_to_photo", "monet_critic", "photo_critic", "_optimizer",
             "iterations", "monet_pool", "photo_pool", "rng")
    if "cut" in settings.get("model.kind", ""):
        parts = ("photo_to_monet", "monet_critic", "nce_heads", "_optimizer", "iterations",
                 "patch_rng", "rng")
    for part in parts:
        assert any(part in key for key in a), (part, sorted(a)[:40])
    differing = [k for k in a if not np.array_equal(a[k], b[k])]
    assert not differing, differing[:10]
    steps = [v for k, v in a.items() if "iterations" in k]
    assert steps and all(int(v) == total for v in steps), steps


def test_export_cli_names_what_is_missing(tmp_path):
    result = subprocess.run([sys.executable, "-m", "monet_tf", "export", f"--workdir={tmp_path}"],
                            capture_output=True, text=True, timeout=300, env=_env())
    assert result.returncode == 2
    assert f"{tmp_path / 'config.json'} not found" in result.stderr


def test_bad_data_dir_is_one_clear_error(tmp_path):
    result = run_train(tmp_path / "run", f"--data_dir={tmp_path / 'nowhere'}")
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: --data_dir={tmp_path / 'nowhere'}: no such directory")
    assert not (tmp_path / "run" / "checkpoints").exists()


NOISE = re.compile(r"^[IWE]\d{4} |All log messages before absl|Sharding callback|Assets written",
                   re.M)


@pytest.mark.xdist_group("wandb_run")
def test_wandb_offline_logs_metrics(wandb_run):
    tmp_path, result, _ = wandb_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Sharding callback duration" in result.stderr  # --verbosity=0 shows absl INFO lines
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list((tmp_path / "wandb").iterdir())
    assert (tmp_path / "wandb_run_id").read_text().strip() in runs[0].name
    rows = wandb_records.history(runs[0])
    epoch_rows = [row for row in rows if "monet_gen_loss" in row]
    assert [row["_step"] for row in epoch_rows] == [1], rows  # one epoch, logged at step 1
    assert all(np.isfinite(row[key]) for row in epoch_rows for key in METRICS)
    assert any(key.startswith("samples/") for row in epoch_rows for key in row), rows


@pytest.mark.xdist_group("wandb_run")
def test_without_inception_weights_the_quality_card_scores_and_chooses_the_best(wandb_run):
    workdir, result, _ = wandb_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert "scores: MiFID is off" in result.stdout and "the quality card alone" in result.stdout
    with open(workdir / "metrics.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert "mifid" not in row
    card = {key: float(row[key]) for key in ("card_score", "card_swd", "card_palette",
                                             "card_spectrum", "card_checkerboard", "card_ssim",
                                             "card_memorization")}
    assert all(np.isfinite(v) for v in card.values()) and 0 < card["card_ssim"] <= 1, card
    best = json.loads((workdir / "export" / "best" / "score.json").read_text())
    assert best == {"epoch": 1, "by": "card", "card_score": pytest.approx(card["card_score"])}
    assert (workdir / "export" / "best" / "photo_to_monet" / "saved_model.pb").exists()
    (run,) = (workdir / "wandb").glob("offline-run-*")
    assert any(row.get("card_score") == pytest.approx(card["card_score"])
               for row in wandb_records.history(run))


@pytest.mark.xdist_group("wandb_run")
def test_without_tensorboard_training_logs_everything_else(wandb_run):
    workdir, result, _ = wandb_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert "TBNotInstalledError" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if "tensorboard" in line.lower()]
    assert warnings == ["warning: tensorboard is not installed: TensorBoard logs are off; "
                        "pip install tensorboard"], warnings
    assert not (workdir / "tensorboard").exists()
    with open(workdir / "metrics.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0"]
    for path in ("loss_curves.png", "samples/epoch_0001.png", "checkpoints/checkpoint",
                 "export/photo_to_monet/saved_model.pb"):
        assert (workdir / path).exists(), path
    # wandb too: tests/test_train.py::test_wandb_offline_logs_metrics reads the same run.


@pytest.mark.xdist_group("wandb_run")
def test_auto_precision_on_a_cpu_takes_the_cached_measurement(wandb_run):
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU: auto follows its compute capability")
    workdir, result, cache = wandb_run
    assert result.returncode == 0, result.stderr[-3000:]
    cpu = precision_probe.cpu_model()
    assert (f"precision auto on CPU {cpu}: float32 12.0 ms, bfloat16 19.0 ms per probe step -> "
            f"float32 (cached from 2025-01-02 in {cache})") in result.stdout, result.stdout
    assert "; precision float32; XLA off" in result.stdout
    runtime = json.loads((workdir / "config.json").read_text())["runtime"]
    assert runtime["precision"] == "float32"
    assert runtime["precision_probe"] == {"choice": "float32", "float32_ms": 12.0,
                                          "bfloat16_ms": 19.0, "cpu": cpu,
                                          "measured": "2025-01-02", "cached": True}


@pytest.mark.slow
def test_end_to_end_train_interrupt_resume_score_submit_export_predict(tmp_path, sample_dir):
    """The resumed run scores every other epoch, then submits every sample photo (held-out ones
    too) through the generator export/best holds: the zip's pixels are that SavedModel's."""
    from monet_tf.scoring.inception import build_inception
    from tests.test_submission import assert_zip_is_the_translation

    workdir = tmp_path / "run"
    proc, err = interrupt(workdir, signal.SIGTERM, "--config.train.epochs=3")
    assert_saved_before_exiting(workdir, proc, err, 143)

    weights = tmp_path / "inception.weights.h5"
    build_inception(None).save_weights(str(weights))
    submitted = tmp_path / "submission.zip"
    resumed = run_train(workdir, "--config.train.epochs=3", "--config.eval.every=2",
                        "--config.eval.num_images=4", "--config.eval.batch_size=4",
                        f"--config.eval.inception_weights={weights}", f"--submission={submitted}",
                        "--config.submission.allow_any_count=True",
                        "--config.submission.batch_size=3", timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming from" in resumed.stdout
    assert re.search(r"Epoch 4/4", resumed.stdout), resumed.stdout[-2000:]
    best = json.loads((workdir / "export" / "best" / "score.json").read_text())
    assert best["epoch"] in (2, 4)
    assert re.search(rf"with the best \(MiFID {best['mifid']:.2f}, epoch {best['epoch']}\)",
                     resumed.stdout), resumed.stdout[-3000:]
    assert re.search(rf"submission: {submitted}: 32 images in \S+; \S+ since the run started",
                     resumed.stdout), resumed.stdout[-3000:]
    assert_zip_is_the_translation(submitted, workdir / "export" / "best" / "photo_to_monet",
                                  sample_dir)

    with open(workdir / "metrics.csv") as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    assert epochs == [0, 1, 2, 3]
    for path in ("config.json", "loss_curves.png", "samples/epoch_0004.png",
                 "export/photo_to_monet/saved_model.pb", "export/monet_to_photo/saved_model.pb"):
        assert (workdir / path).exists(), path
    assert list((workdir / "tensorboard").rglob("events.out.tfevents.*"))
    assert len(list((workdir / "demo").glob("*_monet.jpg"))) == 2

    # Re-exporting from the latest checkpoint gives the generator the run exported.
    reexport = subprocess.run(
        [sys.executable, "-m", "monet_tf", "export", f"--workdir={workdir}",
         f"--output={tmp_path / 'reexport'}"],
        capture_output=True, text=True, timeout=300, env=_env())
    assert reexport.returncode == 0, reexport.stderr[-3000:]

    # The exports run in a fresh process that has TensorFlow but not monet_tf.
    probe = (
        "import sys, numpy as np, tensorflow as tf\n"
        "x = tf.constant(np.random.default_rng(0).integers(0, 256, [3, 36, 44, 3]), tf.uint8)\n"
        "ys = [tf.saved_model.load(p).signatures['serving_default'](x)['images'] for p in sys.argv[1:]]\n"
        "assert 'monet_tf' not in sys.modules\n"
        "print(ys[0].dtype.name, ys[0].shape.as_list(), int(tf.reduce_max(tf.abs(\n"
        "    tf.cast(ys[0], tf.int32) - tf.cast(ys[1], tf.int32)))))\n"
    )
    fresh = subprocess.run([sys.executable, "-I", "-c", probe, str(workdir / "export/photo_to_monet"),
                            str(tmp_path / "reexport/photo_to_monet")],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path,
                           env={"PATH": os.environ["PATH"], "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert fresh.stdout.strip().splitlines()[-1] == "uint8 [3, 36, 44, 3] 0"

    zip_path = tmp_path / "images.zip"
    predicted = subprocess.run(
        [sys.executable, "-m", "monet_tf", "predict",
         f"--model={workdir / 'export/photo_to_monet'}",
         f"--input={sample_dir / 'photo_tfrec'}", f"--output={zip_path}", "--allow_any_count"],
        capture_output=True, text=True, timeout=600, env=_env())
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    photos = sum(1 for _ in tf.data.TFRecordDataset(
        tf.io.gfile.glob(str(sample_dir / "photo_tfrec" / "*.tfrec"))))
    with zipfile.ZipFile(zip_path) as z:
        names = z.namelist()
        assert len(names) == len(set(names)) == photos
        for name in names:
            image = tf.io.decode_jpeg(z.read(name))
            assert image.shape == (256, 256, 3), name


@pytest.mark.parametrize("budget,where", [("1s", "in epoch 1 of 51"), ("25s", "before epoch")])
def test_time_budget_stops_cleanly_then_saves_and_exports(tmp_path, budget, where):
    """1s runs out in the first epoch's first step; 25s before an epoch that would not fit (the
    first, with its trace, ends ~5 s into the budget on an idle 2-core machine: 25 s leaves room
    for a loaded one, and no more, since the budget is spent as CPU). Either way: saved,
    exported, exit 0, and the console carries no TensorFlow log lines."""
    result = run_train(tmp_path, "--config.train.epochs=50", f"--config.train.time_budget={budget}",
                       f"--submission={tmp_path / 'images.zip'}",
                       "--config.submission.allow_any_count=True")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"time budget 0m{int(budget[:-1]):02d}s: stopped {where}" in result.stdout, result.stdout
    done = re.search(r"done within the time budget: (\d+) of 51 epochs, (\d+) steps", result.stdout)
    assert done, result.stdout[-2000:]
    epochs, steps = int(done.group(1)), int(done.group(2))
    assert steps < 51 * 3 and epochs == steps // 3
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith(f"ckpt-{steps}")
    assert (tmp_path / "export" / "photo_to_monet" / "saved_model.pb").exists()
    assert len(list((tmp_path / "demo").glob("*_monet.jpg"))) == 2
    assert re.search(rf"submission: {tmp_path / 'images.zip'}: 32 images", result.stdout)
    if budget == "1s":
        assert steps == 1 and not list((tmp_path / "samples").glob("*.png"))
    noise = NOISE.findall(result.stdout + result.stderr)
    assert not noise, noise[:5]
