"""The whole training job as two processes on this machine, on JAX (jax.distributed, gloo over
127.0.0.1) and on TensorFlow (MultiWorkerMirroredStrategy): started by docs/multihost.md's commands,
one writer, a restart of every process resumes exactly, SIGTERM to every process stops them after
the same step, and a process killed with -9 stops the other within a bounded time, naming it.

Per backend a straight run (the reference, and the one-writer checks), a run that is
interrupted, and its restart; module fixtures, so each runs once. The interruption is a kill -9
of process 1 on JAX (whose processes watch each other's "alive" counters: monet_tf's code) and
SIGTERM to both on TensorFlow (stopping mid-epoch, the harder resume); the other kind is left to
the other backend to keep the suite's time.
"""

import json
import os
import pathlib
import re
import shlex
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from monet_tf.runtime.launch import free_ports

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "tiny_config.py"
# The killed run's heartbeat: its processes call each other lost after half of it without a tick.
# At 10 s (a 5 s silence) process 1 once called a healthy process 0 lost while this machine ran
# other work beside the suite; 20 s keeps the check (the survivor stops within 2 x HEARTBEAT_S).
HEARTBEAT_S = 20
# DiffAugment, and on JAX pools of size 1: their RNG and contents are state that must resume
# exactly. TensorFlow keeps a pool per replica and checkpoints replica 0's (image_pool.py), so a
# resume there refills process 1's pool from process 0's: its runs have none. 12 steps an epoch
# leave time to stop both processes inside the second.
STEPS = 12
RUN = [f"--config.data.steps_per_epoch={STEPS}", "--config.train.epochs=2",
       "--config.train.decay_epochs=0", "--config.loss.diffaugment=color,translation,cutout",
       "--coordinator_timeout=120"]
POOLS = {"jax": ["--config.loss.pool_size=1"], "tensorflow": ["--config.loss.pool_size=0"]}

pytest.importorskip("jax", reason="the JAX tests need jax (pip install jax)")
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("multihost_runs")]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("KERAS_BACKEND", "TF_CONFIG", "JAX_PLATFORMS")
           and not k.startswith("KERAS_DISTRIBUTION")}
    env.update(PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2", WANDB_MODE="offline")
    return env


def readme_command(starts_with: str) -> list[str]:
    """The line of docs/multihost.md that starts so, as argv (its trailing comment dropped;
    `monet-tf` run as `python -m monet_tf`)."""
    lines = [line for line in (REPO / "docs" / "multihost.md").read_text().splitlines()
             if line.startswith(starts_with)]
    assert lines, f"docs/multihost.md must show: {starts_with} ..."
    argv = shlex.split(lines[0].split("#")[0])
    argv = [sys.executable if arg == "python" else arg for arg in argv]
    return [sys.executable, "-m", "monet_tf", *argv[1:]] if argv[0] == "monet-tf" else argv


def launch(backend: str, workdir, *flags, timeout=600) -> subprocess.CompletedProcess:
    """docs/multihost.md's command for N processes on this machine, for `backend`."""
    argv = readme_command("monet-tf launch --num_processes=2 -- python run_train.py")
    argv = [arg for arg in argv if not arg.startswith("--backend=")]
    return subprocess.run([*argv, f"--backend={backend}", f"--config={TINY}",
                           f"--workdir={workdir}", *flags], capture_output=True, text=True,
                          timeout=timeout, env=_env(), cwd=REPO)


def start(backend: str, workdir, *flags) -> list[subprocess.Popen]:
    """Two processes started one by one, as on two machines: with the flags on JAX, with
    TF_CONFIG on TensorFlow."""
    ports = free_ports(2)
    procs = []
    for index in range(2):
        env = _env()
        if backend == "jax":
            where = ["--num_processes=2", f"--process_id={index}",
                     f"--coordinator_address=127.0.0.1:{ports[0]}"]
        else:
            where = []
            env["TF_CONFIG"] = json.dumps({
                "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            [sys.executable, str(REPO / "run_train.py"), f"--backend={backend}", "--strategy=cpu",
             f"--config={TINY}", f"--workdir={workdir}", *where, *flags],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO))
    return procs


def first_checkpoint(backend: str, workdir: pathlib.Path) -> pathlib.Path:
    """What exists once epoch 1 is saved: the next steps are epoch 2's."""
    name = f"ckpt-{STEPS}"
    return workdir / "checkpoints" / (f"{name}/COMPLETE" if backend == "jax" else f"{name}.index")


def wait_for(path: pathlib.Path, procs, timeout=300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
            for p in procs:
                p.kill()
            raise AssertionError("training ended early or never started: " + "\n".join(
                p.communicate()[1][-2000:] for p in procs))
        time.sleep(0.1)


def finish(procs, timeout=300) -> list[tuple[int, str, str]]:
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        results.append((proc.returncode, out, err))
    return results


def checkpoint_arrays(backend: str, workdir: pathlib.Path) -> dict:
    """Every array of the run's latest checkpoint (networks, optimizer slots, pools, RNG)."""
    if backend == "tensorflow":
        import tensorflow as tf

        reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(workdir / "checkpoints")))
        return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
                if key != "_CHECKPOINTABLE_OBJECT_GRAPH" and not key.startswith("save_counter")}
    from tests.test_train_jax import _checkpoint_arrays

    folders = sorted((workdir / "checkpoints").glob("ckpt-*"), key=lambda p: int(p.name[5:]))
    return {k: v for k, v in _checkpoint_arrays(folders[-1]).items() if v.dtype.kind != "U"}


@pytest.fixture(scope="module", params=["jax", "tensorflow"])
def runs(request, tmp_path_factory):
    backend = request.param
    run = [*RUN, *POOLS[backend]]
    root = tmp_path_factory.mktemp(f"multihost_{backend}")
    weights = root / "inception.weights.h5"
    scores = []
    if backend == "tensorflow":  # MiFID on TensorFlow (on JAX: minutes of XLA:CPU compile).
        from monet_tf.scoring.inception import build_inception

        build_inception(None).save_weights(str(weights))
        scores = ["--config.eval.every=2", "--config.eval.num_images=3",
                  "--config.eval.batch_size=2", f"--config.eval.inception_weights={weights}"]

    def straight_run() -> subprocess.CompletedProcess:
        return launch(backend, root / "straight", *run, *scores,
                      f"--submission={root / 'images.zip'}",
                      "--config.submission.allow_any_count=True",
                      "--config.submission.batch_size=4")

    out = {"backend": backend, "root": root, "weights": weights}
    quiet = [*run, "--config.train.sample_every=0"]  # Grids are the straight run's to check.
    if backend == "jax":  # More epochs, so that the kill lands in training (same schedule).
        # The short heartbeat only where a process is killed: elsewhere a machine that stalls
        # the processes for half of it (a paused VM: seen once) would stop a healthy run.
        interrupted = start(backend, root / "resumed", *quiet[:1], "--config.train.epochs=100",
                            *quiet[2:], f"--heartbeat_timeout={HEARTBEAT_S}")
        wait_for(first_checkpoint(backend, root / "resumed"), interrupted)
        interrupted[1].kill()
        killed_at = time.monotonic()
        # Process 0 waits up to 2 x HEARTBEAT_S to call process 1 lost, asleep: the straight
        # run uses the cores meanwhile.
        with ThreadPoolExecutor(1) as pool:
            survivor = pool.submit(lambda: (finish(interrupted[:1], timeout=120)[0],
                                            time.monotonic() - killed_at))
            out["straight"] = straight_run()
            out["survivor"], out["survivor_s"] = survivor.result()
        finish(interrupted[1:])
    else:
        out["straight"] = straight_run()
        interrupted = start(backend, root / "resumed", *quiet)
        wait_for(first_checkpoint(backend, root / "resumed"), interrupted)  # Stop in epoch 2.
        for proc in interrupted:
            proc.send_signal(signal.SIGTERM)
        out["stopped"] = finish(interrupted)
    out["restarted"] = launch(backend, root / "resumed", *quiet)
    return out


def test_readme_command_trains_one_run_that_process_0_alone_writes(runs):
    root, result = runs["root"], runs["straight"]
    assert result.returncode == 0, result.stderr[-4000:]
    out = result.stdout
    for index in (0, 1):
        assert f"[process {index}] done: 2 epochs" in out
        assert re.search(rf"\[process {index}\] backend: {runs['backend']}; strategy cpu: 2 "
                         rf"replica\(s\) .* over 2 processes \(this is process {index}\)", out)
    # Process 0 alone shows progress and the submission; the files are written once.
    assert "[process 0] Epoch 2/2" in out and "[process 1] Epoch" not in out
    assert "[process 0] submission: " in out and "[process 1] submission" not in out
    workdir = root / "straight"
    header, *rows = (workdir / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows] == ["0", "1"]
    config = json.loads((workdir / "config.json").read_text())
    assert config["runtime"]["processes"] == 2 and config["train"]["global_batch_size"] == 2
    assert sorted(p.name for p in (workdir / "samples").iterdir()) == [
        "epoch_0001.png", "epoch_0002.png"]
    assert not list(workdir.glob(".write_test*"))
    assert list((workdir / "tensorboard").rglob("events.out.tfevents.*"))
    for path in ("export/photo_to_monet/saved_model.pb", "export/monet_to_photo/saved_model.pb",
                 "demo/000_monet.jpg"):
        assert (workdir / path).exists(), path
    checkpoints = sorted(p.name for p in (workdir / "checkpoints").iterdir())
    if runs["backend"] == "jax":
        assert checkpoints == ["ckpt-12", "ckpt-24"]
    else:
        assert checkpoints == ["checkpoint", "ckpt-12.data-00000-of-00001", "ckpt-12.index",
                               "ckpt-24.data-00000-of-00001", "ckpt-24.index"]
    import zipfile

    with zipfile.ZipFile(root / "images.zip") as archive:
        assert len(archive.namelist()) == 32 == len(set(archive.namelist()))


def test_a_restart_of_every_process_resumes_exactly(runs):
    root, backend = runs["root"], runs["backend"]
    restarted = runs["restarted"]
    assert restarted.returncode == 0, restarted.stderr[-4000:]
    resumed = re.findall(r"\[process (\d)\] Resuming from (\S+): epoch 2, step (\d+) of 12\.",
                         restarted.stdout)
    # Every process read process 0's checkpoint: the epoch's last (killed) or the step the
    # stop was agreed after (SIGTERM).
    assert sorted(p for p, _, _ in resumed) == ["0", "1"] and len({c for _, c, _ in resumed}) == 1
    step = STEPS + int(resumed[0][2])
    assert resumed[0][1] == f"{root / 'resumed' / 'checkpoints'}/ckpt-{step}"
    a = checkpoint_arrays(backend, root / "straight")
    b = checkpoint_arrays(backend, root / "resumed")
    assert a.keys() == b.keys() and len(a) > 50
    differing = [k for k in a if not np.array_equal(a[k], b[k])]
    assert not differing, differing[:10]
    if backend == "jax":  # The pools were filled: their contents were resumed too.
        pools = [k for k in a if k.startswith("state/non_trainable/") and a[k].ndim == 4]
        assert pools and all(np.abs(a[k]).sum() > 0 for k in pools)
    header, *rows = (root / "resumed" / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows] == ["0", "1"]


def test_sigterm_to_every_process_stops_them_after_the_same_step(runs):
    if runs["backend"] != "tensorflow":
        pytest.skip("interrupted by SIGTERM on TensorFlow; by a kill on JAX")
    steps = set()
    for code, out, err in runs["stopped"]:
        assert code == 143, err[-3000:]
        saved = re.search(r"SIGTERM[^:]*: saved (\S+)ckpt-(\d+) at step (\d+)", err)
        assert saved and saved.group(2) == saved.group(3), err[-2000:]
        steps.add(int(saved.group(2)))
    (step,) = steps  # Both stopped after the same step, in epoch 2.
    assert STEPS < step < 2 * STEPS


def test_a_killed_process_stops_the_other_naming_it(runs):
    if runs["backend"] != "jax":
        pytest.skip("interrupted by a kill on JAX; by SIGTERM on TensorFlow")
    code, out, err = runs["survivor"]
    assert code == 4, err[-3000:]
    assert err.strip().splitlines()[-1] == (
        "error: lost process 1 of 2 (killed, crashed or preempted: its own log says why), so "
        "process 0 stops too. Restart every process with the same command to resume from the "
        "last checkpoint.")
    assert runs["survivor_s"] < 2 * HEARTBEAT_S


def test_mifid_gathers_the_features_of_every_process(runs):
    """The score the two processes logged is the score of the same generator on all three
    held-out photos, computed here in one process; on process 0's rows alone it is not."""
    if runs["backend"] != "tensorflow":
        pytest.skip("scored on TensorFlow only (InceptionV3's XLA:CPU compile takes minutes)")
    import types

    import keras
    import ml_collections

    from monet_tf import data
    from monet_tf.scoring import metrics
    from monet_tf.scoring.mifid_callback import MiFIDCallback
    from monet_tf.models.families import build_generators

    workdir = runs["root"] / "straight"
    cfg = ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text()))
    score = json.loads((workdir / "export" / "best" / "score.json").read_text())["mifid"]
    keras.config.set_dtype_policy("float32")
    generator = build_generators(cfg)["photo_to_monet"]
    generator.load_weights(str(workdir / "export" / "best" / "photo_to_monet.weights.h5"))
    sources = data.find_sources(cfg.data.data_dir, cfg.data.monet, cfg.data.photo)
    report = data.validate(sources, min_image_size=cfg.data.min_image_size,
                           heldout_fraction=cfg.data.heldout_fraction)
    callback = MiFIDCallback(data.heldout_photos(sources, report, cfg.data, 3),
                             data.eval_images(sources, report, "monet", cfg.data, 3),
                             batch_size=2, inception_weights=str(runs["weights"]))
    callback.set_model(types.SimpleNamespace(photo_to_monet=generator))
    every = callback.score()["mifid"]
    generated = callback._features(callback.photos, transform=callback._translate)
    first = metrics.scores(generated[:2], callback._monet_features)["mifid"]
    assert every == pytest.approx(score, rel=1e-5)
    assert abs(first - score) > max(100 * abs(every - score), 1e-4 * score), (every, first, score)
