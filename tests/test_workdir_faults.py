"""What a workdir survives (issue 35): a second run started on it, a damaged checkpoint (both
backends) and a full disk, each through run_train.py in subprocesses. The full disk is real: a
small tmpfs mounted in a private mount namespace (unshare), so the kernel's ENOSPC reaches
TensorFlow's and Python's writes as it would on a full volume."""

import errno
import hashlib
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from monet_tf.models import checkpoints as ckpt
from monet_tf.runtime import disk
from monet_tf.runtime.devices import Runtime
from monet_tf.training import workdir_lock
from tests import test_train_jax
from tests.test_train import _checkpoint_arrays, _env, run_train

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "tiny_config.py"
DETERMINISTIC = "--config.train.deterministic=True"  # A resume is compared bit for bit.


def _digests(folder: pathlib.Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and stderr.strip().splitlines()[-1] == errors[0], stderr[-3000:]
    return errors[0]


# --- the pieces, in this process ---------------------------------------------------------------

def test_a_full_disk_is_recognised_in_each_layers_words():
    said = tf.errors.ResourceExhaustedError(
        None, None, "{{function_node __wrapped__SaveV2}} /w/checkpoints/ckpt-9_temp/part-00000-of-"
        "00001.data-00000-of-00001.tempstate88; No space left on device [Op:SaveV2]")
    assert disk.disk_full(said).path.startswith("/w/checkpoints/ckpt-9_temp/part-00000")
    assert disk.disk_full(OSError(errno.EDQUOT, "Disk quota exceeded")).reason == errno.EDQUOT
    assert disk.disk_full(OSError(errno.EFBIG, "File too large", "/w/x")).path == "/w/x"
    # Not a full disk: memory, another OSError.
    out_of_memory = tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
    assert disk.disk_full(out_of_memory) is None
    assert disk.disk_full(OSError(errno.EACCES, "Permission denied")) is None
    try:  # Raised from: a wrapper of the error still says it.
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as err:
            raise RuntimeError("writing failed") from err
    except RuntimeError as err:
        assert disk.disk_full(err).reason == errno.ENOSPC


def test_the_innermost_write_names_the_path_and_size_the_outermost_the_advice(tmp_path):
    removed = []
    with pytest.raises(disk.DiskFull) as caught:
        with disk.writing(str(tmp_path), then="Rerun to continue"):
            with disk.writing(str(tmp_path / "ckpt-9"), lambda: 2_400_000, "the checkpoint",
                              cleanup=lambda: removed.append(True)):
                raise tf.errors.ResourceExhaustedError(
                    None, None, f"{tmp_path}/ckpt-9_temp/part; No space left on device")
    line = str(caught.value)
    assert removed == [True]
    assert line.startswith(f"writing the checkpoint to {tmp_path / 'ckpt-9'}: no space left on "
                           "the device (it needs about 2.4 MB, ")
    assert line.endswith(" free there); the part written is removed. Rerun to continue")


def test_a_workdir_is_held_by_one_holder_at_a_time(tmp_path):
    runtime = Runtime("tensorflow", "cpu", ["/cpu:0"], 1)
    with workdir_lock.hold(str(tmp_path), runtime):
        with pytest.raises(workdir_lock.WorkdirInUse) as caught:
            workdir_lock.acquire(str(tmp_path))  # Another open of the file: another holder.
        assert (f"--workdir={tmp_path} is in use by process {os.getpid()} on "
                f"{socket.gethostname()} since ") in str(caught.value)
    os.close(workdir_lock.acquire(str(tmp_path)))  # Released on leaving.


# --- through run_train.py ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> pathlib.Path:
    """The tiny CycleGAN's two epochs on TensorFlow: checkpoints ckpt-3 and ckpt-6."""
    workdir = tmp_path_factory.mktemp("faults") / "run"
    result = run_train(workdir, DETERMINISTIC)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (workdir / "checkpoints").glob("*.index")) == [
        "ckpt-3.index", "ckpt-6.index"]
    return workdir


@pytest.mark.slow
@pytest.mark.xdist_group("workdir_faults")
def test_a_truncated_checkpoint_is_skipped_and_the_run_resumes_exactly_from_the_one_before(
        trained, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(trained, workdir)
    data = workdir / "checkpoints" / "ckpt-6.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # A copy cut short.
    result = run_train(workdir, DETERMINISTIC)
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        f"warning: checkpoint {workdir}/checkpoints/ckpt-6 cannot be read (IndexError: Read less "
        f"bytes than requested): skipped; resuming from {workdir}/checkpoints/ckpt-3, the newest "
        "one that can"], result.stderr[-3000:]
    assert f"Resuming from {workdir}/checkpoints/ckpt-3: epoch 2, step 0 of 3." in result.stdout
    # The damaged restore assigned part of the model; the one after it assigned all of it.
    a = _checkpoint_arrays(str(trained / "checkpoints" / "ckpt-6"))
    b = _checkpoint_arrays(str(workdir / "checkpoints" / "ckpt-6"))
    assert a.keys() == b.keys() and len(a) > 100
    assert not [key for key in a if not np.array_equal(a[key], b[key])]


@pytest.mark.slow
@pytest.mark.xdist_group("workdir_faults")
def test_when_no_checkpoint_can_be_read_the_run_stops_with_one_line(trained, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(trained, workdir)
    (workdir / "checkpoints" / "ckpt-6.data-00000-of-00001").unlink()
    index = workdir / "checkpoints" / "ckpt-3.index"
    index.write_bytes(index.read_bytes()[:100])
    result = run_train(workdir)
    assert result.returncode == 2, result.stderr[-3000:]
    line = _one_error_line(result.stderr)
    root = workdir / "checkpoints"
    assert line.startswith(f"error: no checkpoint in {root} can be read: {root}/ckpt-6 ("), line
    assert f"ckpt-6.data-00000-of-00001; No such file or directory); {root}/ckpt-3 (" in line
    assert line.endswith("Restore them from a copy, or move that folder away to start the run "
                         "afresh"), line
    assert "Epoch" not in result.stdout


@pytest.mark.slow
@pytest.mark.xdist_group("workdir_faults")
def test_a_second_run_on_a_workdir_in_use_stops_and_a_killed_one_leaves_nothing_behind(
        trained, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(trained, workdir)
    holder = subprocess.Popen(
        [sys.executable, str(REPO / "run_train.py"), f"--config={TINY}", f"--workdir={workdir}",
         "--config.train.epochs=500"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=_env())
    try:
        for line in holder.stdout:  # Until it trains.
            if line.startswith("Resuming from"):
                break
        else:
            pytest.fail(f"the first run ended: {holder.communicate()[1][-3000:]}")
        started = time.monotonic()
        second = run_train(workdir, "--config.train.epochs=500", timeout=300)
        took = time.monotonic() - started
        assert holder.poll() is None, "the first run ended before the second was refused"
    finally:
        holder.kill()  # kill -9: no handler runs, nothing is cleaned up.
        holder.communicate()
    assert second.returncode == 2, second.stderr[-3000:]
    line = _one_error_line(second.stderr)
    assert line.startswith(f"error: --workdir={workdir} is in use by process {holder.pid} on "
                           f"{socket.gethostname()} since "), line
    assert f"its lock is {workdir}/workdir.lock" in line
    assert "Epoch" not in second.stdout and took < 120
    after = run_train(workdir, "--config.train.epochs=1", timeout=300)
    assert after.returncode == 0, after.stderr[-3000:]
    assert "Resuming from" in after.stdout
    assert json.loads((workdir / "workdir.lock").read_text())["pid"] != holder.pid


@pytest.fixture(scope="module")
def trained_jax(tmp_path_factory) -> pathlib.Path:
    """The same two epochs on JAX: checkpoint folders ckpt-3 and ckpt-6."""
    workdir = tmp_path_factory.mktemp("faults_jax") / "run"
    result = run_train(workdir, "--backend=jax", **test_train_jax._env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["ckpt-3", "ckpt-6"]
    return workdir


@pytest.mark.slow
@pytest.mark.xdist_group("workdir_faults_jax")
def test_on_jax_a_damaged_state_is_skipped_and_the_run_resumes_exactly(trained_jax, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(trained_jax, workdir)
    state = workdir / "checkpoints" / "ckpt-6" / "state.npz"
    state.write_bytes(state.read_bytes()[:3000])
    result = run_train(workdir, "--backend=jax", **test_train_jax._env())
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        f"warning: checkpoint {workdir}/checkpoints/ckpt-6 cannot be read (BadZipFile: File is "
        f"not a zip file): skipped; resuming from {workdir}/checkpoints/ckpt-3, the newest one "
        "that can"], result.stderr[-3000:]
    assert f"Resuming from {workdir}/checkpoints/ckpt-3: epoch 2, step 0 of 3." in result.stdout
    a = test_train_jax._checkpoint_arrays(trained_jax / "checkpoints" / "ckpt-6")
    b = test_train_jax._checkpoint_arrays(workdir / "checkpoints" / "ckpt-6")
    assert a.keys() == b.keys() and len(a) > 100
    assert not [k for k in a if a[k].dtype.kind != "U" and not np.array_equal(a[k], b[k])]


@pytest.mark.slow
@pytest.mark.xdist_group("workdir_faults_jax")
def test_on_jax_when_no_checkpoint_can_be_read_the_run_stops_with_one_line(trained_jax, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(trained_jax, workdir)
    root = workdir / "checkpoints"
    weights = root / "ckpt-6" / "photo_to_monet.weights.h5"
    weights.write_bytes(weights.read_bytes()[:4096])
    (root / "ckpt-3" / "state.npz").unlink()
    result = run_train(workdir, "--backend=jax", **test_train_jax._env())
    assert result.returncode == 2, result.stderr[-3000:]
    line = _one_error_line(result.stderr)
    assert line.startswith(f"error: no checkpoint in {root} can be read: {root}/ckpt-6 (OSError: "
                           "Unable to synchronously open file (truncated file: eof = 4096"), line
    assert f"); {root}/ckpt-3 (NotFoundError: " in line and "state.npz" in line, line
    assert "Epoch" not in result.stdout


@pytest.mark.slow
def test_a_run_of_two_processes_on_a_workdir_in_use_stops_on_both(tmp_path):
    """Process 0 tries the lock and tells process 1 (TensorFlow's workers, from monet-tf launch):
    both stop with the line, neither waits for the other to time out. Held here, by this test."""
    fd = workdir_lock.acquire(str(tmp_path))
    try:
        env = {k: v for k, v in _env().items() if not k.startswith(("KERAS_", "TF_CONFIG"))}
        result = subprocess.run(
            [sys.executable, "-m", "monet_tf", "launch", "--num_processes=2", "--",
             sys.executable, str(REPO / "run_train.py"), f"--config={TINY}",
             f"--workdir={tmp_path}", "--coordinator_timeout=60"],
            capture_output=True, text=True, timeout=300, env=env)
    finally:
        os.close(fd)
    assert result.returncode == 2, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-3000:]
    for index in (0, 1):
        assert (f"[process {index}] error: --workdir={tmp_path} is in use by process "
                f"{os.getpid()} on {socket.gethostname()} since ") in output, output[-3000:]
    assert not (tmp_path / "checkpoints").exists()


FULL_DISK = r"""
import hashlib, json, os, pathlib, shutil, subprocess, sys

workdir, zips, trained, config = map(pathlib.Path, sys.argv[1:5])
shutil.copytree(trained, workdir)
run = [sys.executable, sys.argv[5], f"--config={config}", f"--workdir={workdir}",
       "--config.train.epochs=2", "--config.train.deterministic=True"]

def state(folder="checkpoints"):
    return {str(p.relative_to(workdir / folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((workdir / folder).rglob("*")) if p.is_file()}

def phase(*flags, free=None):
    ballast = workdir.parent / "ballast"
    if free is not None:  # All but `free` bytes of the volume taken.
        stat = os.statvfs(workdir)
        ballast.write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - free))
    result = subprocess.run(run + list(flags), capture_output=True, text=True)
    ballast.unlink(missing_ok=True)
    return {"rc": result.returncode, "stdout": result.stdout[-4000:],
            "stderr": result.stderr[-4000:], "checkpoints": state(), "export": state("export"),
            "zips": sorted(p.name for p in zips.iterdir())}

out = {"before": state(), "export_before": state("export")}
# Epoch 3 writes ~0.2 MB of log, grid and curves, then its 2.4 MB checkpoint, then ~1 MB of
# SavedModels.
out["full"] = phase(free=1_000_000)
out["export_full"] = phase(free=2_850_000)
out["zip_full"] = phase(f"--submission={zips / 'images.zip'}",
                        "--config.submission.allow_any_count=True")
grid = subprocess.run([sys.executable, "-c", (
    "import sys; from monet_tf.runtime import disk\n"
    "try:\n    disk.write_bytes(sys.argv[1], bytes(200_000), 'the sample grid')\n"
    "except disk.DiskFull as full:\n    print(full)\n"), str(zips / "epoch_0004.png")],
    capture_output=True, text=True)
out["grid"] = {"stdout": grid.stdout, "stderr": grid.stderr[-3000:],
               "zips": sorted(p.name for p in zips.iterdir())}
print(json.dumps(out))
"""


def _private_tmpfs(*mounts: tuple[pathlib.Path, str]) -> list[str] | None:
    """The command prefix that runs a command with tmpfs of the given sizes mounted at the given
    folders, seen by it and its children alone: a private mount namespace (root, or a user
    namespace where the kernel allows them). None where neither is allowed."""
    mount = " && ".join(f"mount -t tmpfs -o size={size} tmpfs {folder}"
                        for folder, size in mounts)
    for unshare in (["unshare", "--mount"], ["unshare", "--user", "--map-root-user", "--mount"]):
        if shutil.which("unshare") is None:
            return None
        probe = subprocess.run([*unshare, "sh", "-c", f"{mount} && true"], capture_output=True)
        if probe.returncode == 0:
            return [*unshare, "sh", "-c", f'{mount} && exec "$@"', "sh"]
    return None


@pytest.mark.slow
@pytest.mark.xdist_group("workdir_faults")
def test_a_full_disk_ends_the_run_with_one_line_and_the_rerun_with_space_resumes(
        trained, tmp_path):
    """A 16 MB volume filled to 1 MB free before epoch 3's checkpoint (2.4 MB), then to room
    for the checkpoint but not the export; then, with space again, the same command with its
    submission on a 64 KB volume (the zip needs ~1.5 MB), where a sample grid fails too."""
    volume, zips = tmp_path / "volume", tmp_path / "zips"
    volume.mkdir()
    zips.mkdir()
    prefix = _private_tmpfs((volume, "16m"), (zips, "64k"))
    if prefix is None:
        pytest.skip("no private mount namespace here (needs root or user namespaces) for a "
                    "small tmpfs")
    result = subprocess.run(
        [*prefix, sys.executable, "-c", FULL_DISK, str(volume / "run"), str(zips), str(trained),
         str(TINY), str(REPO / "run_train.py")],
        capture_output=True, text=True, timeout=900, env=_env())
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    root = volume / "run" / "checkpoints"

    full, export_full = out["full"], out["export_full"]
    assert full["rc"] == 2, full["stderr"]
    line = _one_error_line(full["stderr"])
    assert line.startswith(f"error: writing the checkpoint to {root}/ckpt-9: no space left on "
                           "the device (it needs about 2.4 MB, "), line
    assert line.endswith("free there); the part written is removed. The checkpoints before it "
                         "are intact: free some space, then rerun the same command to continue "
                         "from the last one"), line
    assert "Epoch 3/3" in full["stdout"]
    assert full["checkpoints"] == out["before"]  # No ckpt-9_temp, no ckpt-9.*; 3 and 6 whole.

    assert export_full["rc"] == 2, export_full["stderr"]
    assert f"Resuming from {root}/ckpt-6: epoch 3, step 0 of 3." in export_full["stdout"]
    assert "ckpt-9.index" in export_full["checkpoints"]
    line = _one_error_line(export_full["stderr"])
    assert line.startswith(f"error: writing the SavedModel to {volume}/run/export/"
                           "photo_to_monet: no space left on the device (it needs about "), line
    assert "; the part written is removed. The checkpoints before it are intact" in line, line
    assert export_full["export"] == out["export_before"]  # The last export whole, no *.tmp.

    zip_full = out["zip_full"]
    assert zip_full["rc"] == 2, zip_full["stderr"]
    assert f"Resuming from {root}/ckpt-9: epoch 4, step 0 of 3." in zip_full["stdout"]
    line = _one_error_line(zip_full["stderr"])
    assert line.startswith(f"error: writing the images to {zips}/images.zip: no space left on "
                           "the device (it needs about "), line
    assert "; the part written is removed. " in line
    assert zip_full["zips"] == []  # images.zip.partial removed.
    grid = out["grid"]
    assert grid["stdout"].startswith(f"writing the sample grid to {zips}/epoch_0004.png: no space "
                                     "left on the device (it needs about 200.0 KB, "), grid
    assert grid["zips"] == []
