"""The whole training job on Keras' JAX backend: exact resume after SIGTERM, the export that
TensorFlow alone loads, and the JAX command of docs/hardware.md over two host devices. Each in
subprocesses, since Keras picks its backend once per process."""

import json
import os
import pathlib
import re
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.test_train import signal_twice

pytest.importorskip("jax", reason="the JAX tests need jax (pip install jax)")

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "tiny_config.py"


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env.update(PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2", WANDB_MODE="offline",
               WANDB_SILENT="true", KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    env.update(extra)
    return env


RESUME_SCRIPT = """
import os, signal, sys
import keras, runpy
from monet_tf.training import job as t

cfg = runpy.run_path(sys.argv[1])["get_config"]()
cfg.train.epochs, cfg.train.decay_epochs = 2, 1
cfg.data.steps_per_epoch, cfg.train.steps_per_execution = 5, 4  # Groups of 4 + 1 per epoch.
cfg.loss.pool_size = 1  # Full after one step, so later steps draw from the pool's RNG.
cfg.loss.diffaugment = "color,translation,cutout"
cfg.model.kind = sys.argv[4]
straight, resumed = sys.argv[2], sys.argv[3]
t.train(cfg, straight, verbose=0)

class KillAt(keras.callbacks.Callback):
    # SIGTERM to this process as epoch 2's first group of steps starts, as a user's kill would.
    def on_train_batch_begin(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == 5:
            os.kill(os.getpid(), signal.SIGTERM)

class CountSteps(keras.callbacks.Callback):
    first = None
    def on_train_batch_begin(self, batch, logs=None):
        if CountSteps.first is None:
            CountSteps.first = int(self.model.optimizer.iterations.numpy())

try:
    t.train(cfg, resumed, verbose=0, extra_callbacks=[KillAt()])
    sys.exit("not interrupted")
except t.TrainingStopped as e:
    print("stopped:", e)
result = t.train(cfg, resumed, verbose=0, extra_callbacks=[CountSteps()])
print("steps after resuming:", result.steps_done - CountSteps.first)
"""


def _checkpoint_arrays(folder: pathlib.Path) -> dict:
    """Every array of a JAX checkpoint folder: the four networks' weights and state.npz."""
    import h5py

    arrays = {f"state/{k}": v for k, v in np.load(folder / "state.npz").items()}
    for path in sorted(folder.glob("*.weights.h5")):
        with h5py.File(path) as f:
            f.visititems(lambda name, item: arrays.__setitem__(f"{path.name}/{name}", item[()])
                         if isinstance(item, h5py.Dataset) else None)
    return arrays


@pytest.mark.slow
def resume_on_jax(tmp_path, kind):
    """A straight run and a run killed in epoch 2 then resumed; returns (stdout, straight's and
    resumed's final checkpoint arrays)."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    result = subprocess.run([sys.executable, "-c", RESUME_SCRIPT, str(TINY), str(straight),
                             str(resumed), kind], capture_output=True, text=True, timeout=1500,
                            env=_env())
    assert result.returncode == 0, result.stderr[-4000:]
    # Stopped after the group of steps the signal arrived in, saved there, resumed from exactly
    # there and ran only the steps left; every epoch ended on a multiple of 5.
    assert re.search(r"stopped: SIGTERM: saved \S+ckpt-9 at step 9", result.stdout), result.stdout
    assert re.search(r"Resuming from \S+ckpt-9: epoch 2, step 4 of 5", result.stdout), (
        result.stdout)
    assert "steps after resuming: 6" in result.stdout, result.stdout
    assert sorted(p.name for p in (straight / "checkpoints").iterdir()) == [
        "ckpt-10", "ckpt-15", "ckpt-5"]
    assert json.loads((resumed / "config.json").read_text())["runtime"]["backend"] == "jax"

    a = _checkpoint_arrays(straight / "checkpoints" / "ckpt-15")
    b = _checkpoint_arrays(resumed / "checkpoints" / "ckpt-15")
    assert a.keys() == b.keys()
    differing = [k for k in a if a[k].dtype.kind != "U" and not np.array_equal(a[k], b[k])]
    assert not differing, differing[:10]
    return result.stdout, a


@pytest.mark.slow
def test_fastcut_resumes_exactly_on_jax(tmp_path):
    _, a = resume_on_jax(tmp_path, "fastcut")
    assert {k.split("/")[0] for k in a if k.endswith(".weights.h5") or ".weights.h5/" in k} == {
        "photo_to_monet.weights.h5", "monet_critic.weights.h5", "nce_heads.weights.h5"}
    assert len([k for k in a if k.startswith("state/optimizer/nce_heads/")]) > 10
    assert sorted(p.name for p in (tmp_path / "resumed" / "export").iterdir()) == [
        "photo_to_monet"]


@pytest.mark.slow
def test_jax_resume_after_sigterm_equals_the_uninterrupted_run_and_exports_for_tensorflow(tmp_path):
    _, a = resume_on_jax(tmp_path, "cyclegan")
    resumed = tmp_path / "resumed"
    # All four networks, every optimizer slot and step count, both pools and the RNG.
    groups = {k.split("/")[0] + "/" + k.split("/")[1] for k in a if k.startswith("state/")}
    assert {"state/optimizer", "state/non_trainable"} <= groups
    assert len([k for k in a if k.endswith(".weights.h5") or ".weights.h5/" in k]) > 20
    pools = [k for k in a if k.startswith("state/non_trainable/") and a[k].ndim == 4]
    assert pools and all(np.abs(a[k]).sum() > 0 for k in pools)  # The pools were filled.

    # The export of a JAX run: a uint8 SavedModel that TensorFlow alone loads (no monet_tf, no
    # Keras backend choice), matching the JAX generator within one level.
    x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    jax_side = (
        "import sys, numpy as np\n"
        "from monet_tf.models import checkpoints as ck\n"
        "g = ck.restore_generators(sys.argv[1])[0]['photo_to_monet']\n"
        "x = np.load(sys.argv[2]).astype('float32') / 127.5 - 1.0\n"
        "y = np.clip(np.round((np.asarray(g(x, training=False)) + 1.0) * 127.5), 0, 255)\n"
        "np.save(sys.argv[3], y.astype(np.uint8))\n"
        "import keras; print(keras.backend.backend())\n")
    jax_out = subprocess.run([sys.executable, "-c", jax_side, str(resumed), str(tmp_path / "x.npy"),
                              str(tmp_path / "jax.npy")], capture_output=True, text=True,
                             timeout=600, env=_env())
    assert jax_out.returncode == 0, jax_out.stderr[-3000:]
    assert jax_out.stdout.strip().splitlines()[-1] == "jax"
    tf_side = (
        "import sys, numpy as np, tensorflow as tf\n"
        "serve = tf.saved_model.load(sys.argv[1]).signatures['serving_default']\n"
        "y = serve(tf.constant(np.load(sys.argv[2])))['images'].numpy()\n"
        "assert 'monet_tf' not in sys.modules\n"
        "ref = np.load(sys.argv[3]).astype(int)\n"
        "print(y.dtype, y.shape, int(np.abs(y.astype(int) - ref).max()), "
        "int(np.abs(ref - 128).max()))\n")
    fresh = subprocess.run(
        [sys.executable, "-I", "-c", tf_side, str(resumed / "export" / "photo_to_monet"),
         str(tmp_path / "x.npy"), str(tmp_path / "jax.npy")], capture_output=True, text=True,
        timeout=300, cwd=tmp_path, env={"PATH": os.environ["PATH"], "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    line = fresh.stdout.strip().splitlines()[-1]
    assert line.startswith("uint8 (2, 32, 32, 3) "), line
    diff, spread = (int(v) for v in line.rsplit(" ", 2)[1:])
    assert diff <= 1, line
    assert spread > 1, line  # Not a blank image on both sides.


@pytest.mark.parametrize("first, second", [(signal.SIGTERM, signal.SIGTERM),
                                           (signal.SIGINT, signal.SIGINT)],
                         ids=["sigterm_twice", "sigint_twice"])
def test_a_second_signal_exits_at_once_while_xla_compiles_the_step(tmp_path, first, second):
    """The first signal asks for a save after the current step; the second, a second later
    while XLA:CPU still compiles the first step (many seconds on 2 cores, the persistent compile
    cache off), ends the run at once, non-zero, saying that nothing was saved. XLA writes the
    step's HLO to --xla_dump_to as it starts compiling it: that is when the signals go."""
    dump = tmp_path / "xla_dump"
    env = _env(JAX_ENABLE_COMPILATION_CACHE="false",
               XLA_FLAGS=f"{os.environ['XLA_FLAGS']} --xla_dump_to={dump} "
               "--xla_dump_hlo_module_re=.*train_step.*")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    workdir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(REPO / "run_train.py"), f"--config={TINY}",
                             f"--workdir={workdir}", "--backend=jax"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 300
        while not list(dump.glob("*train_step*before_optimizations*")):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "XLA never started compiling the train step"
            time.sleep(0.1)
        time.sleep(0.5)
        out, err, took = signal_twice(proc, first, second, 1, timeout_s=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == (130 if second == signal.SIGINT else 143), err[-3000:]
    assert took < 5, f"exited {took:.1f} s after the second signal"
    assert f"{signal.Signals(first).name} received: stopping after this step" in out, out
    assert err.strip().splitlines()[-1] == (
        f"second {signal.Signals(second).name}: exiting now without saving; no checkpoint was "
        "saved yet (a rerun starts from the beginning)."), err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert not (workdir / "checkpoints").exists()  # Still compiling: no step, nothing saved.


def _readme_jax_command() -> list[str]:
    lines = [line for line in (REPO / "docs" / "hardware.md").read_text().splitlines()
             if line.startswith("python run_train.py --backend=jax --strategy=cpu "
                                "--cpu_replicas=2")]
    assert lines, "docs/hardware.md must show the JAX command for two host devices"
    return shlex.split(lines[0].split("#")[0])


@pytest.mark.slow
def test_readme_jax_command_trains_over_two_host_devices_with_mifid_wandb_and_submits(
        tmp_path, sample_dir):
    """Also the submission on JAX: the photos go through one jitted call sharded over both
    devices, and the zip is the translation of the SavedModel export/best holds."""
    from tests.test_submission import assert_zip_is_the_translation

    argv = _readme_jax_command()
    assert argv[:2] == ["python", "run_train.py"]
    # Random-init InceptionV3 weights saved by TensorFlow, read by the JAX run's MiFID callback.
    from monet_tf.scoring.inception import build_inception

    weights = tmp_path / "inception.weights.h5"
    build_inception(None).save_weights(str(weights))
    workdir = tmp_path / "run"
    env = _env()
    env.pop("KERAS_BACKEND")  # The command's own --backend must be enough.
    env.pop("JAX_PLATFORMS")
    result = subprocess.run(
        [sys.executable, str(REPO / argv[1]), *argv[2:], f"--config={TINY}",
         f"--workdir={workdir}", "--config.train.epochs=1", "--config.train.decay_epochs=0",
         "--config.eval.every=1", "--config.eval.num_images=4", "--config.eval.batch_size=2",
         f"--config.eval.inception_weights={weights}", "--wandb",
         f"--submission={tmp_path / 'images.zip'}", "--config.submission.allow_any_count=True",
         "--config.submission.batch_size=3"],
        capture_output=True, text=True, timeout=900, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "backend: jax; strategy cpu: 2 replica(s) on 2 cpu device(s)" in result.stdout
    runtime = json.loads((workdir / "config.json").read_text())["runtime"]
    assert runtime["backend"] == "jax" and runtime["replicas"] == 2 and len(runtime["devices"]) == 2
    for path in ("checkpoints/ckpt-3/COMPLETE", "samples/epoch_0001.png", "loss_curves.png",
                 "export/photo_to_monet/saved_model.pb", "export/monet_to_photo/saved_model.pb",
                 "export/best/photo_to_monet/saved_model.pb", "export/best/score.json"):
        assert (workdir / path).exists(), path
    assert len(list((workdir / "demo").glob("*_monet.jpg"))) == 2
    header, row = (workdir / "metrics.csv").read_text().splitlines()[:2]
    mifid = float(row.split(",")[header.split(",").index("mifid")])
    assert np.isfinite(mifid) and json.loads((workdir / "export/best/score.json").read_text()) == {
        "epoch": 1, "by": "mifid", "mifid": pytest.approx(mifid)}
    assert list((workdir / "wandb").glob("offline-run-*"))
    assert "with the best (MiFID" in result.stdout
    assert_zip_is_the_translation(tmp_path / "images.zip",
                                  workdir / "export" / "best" / "photo_to_monet", sample_dir)
