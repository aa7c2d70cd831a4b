"""A venv of Kaggle's TPU image for tests/test_kaggle_bundle.py: its Python and
monet_tf/kaggle_tpu_stack.txt's pins (tensorflow-cpu 2.20.0, jax 0.7.2, libtpu 0.0.17, keras),
installed from the registry.

The install (~1.5 GB of wheels unpacked, ~25 CPU-s) had kept the worker that ran it waiting 51 to
127 s at the start of a run, so it starts in the background as soon as a run collects the test
(tests/conftest.py) and other tests run meanwhile. The first process of the run to create the
folder installs; the test waits for its exit file.
"""

from __future__ import annotations

import glob
import os
import pathlib
import shutil
import signal
import subprocess
import time

from monet_tf import kaggle

TEST = "tests/test_kaggle_bundle.py::test_bundle_installs_offline_on_kaggles_tpu_stack"
# --no-compile: no .pyc for the thousands of modules never imported here (a minute of CPU).
_INSTALL = ('"$0" -m venv "$1/venv" && "$1/venv/bin/python" -m pip install -q --no-compile '
            '-r "$2"; echo $? > "$1/exit"')


def python_312() -> str | None:
    """An interpreter of Kaggle's Python (the TPU image's), or None."""
    candidates = [shutil.which(f"python{kaggle.KAGGLE_PYTHON}"), *sorted(glob.glob(
        os.path.expanduser(f"~/.pyenv/versions/{kaggle.KAGGLE_PYTHON}*/bin/python3")))]
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True, timeout=60)
        if probe.returncode == 0 and probe.stdout.strip() == kaggle.KAGGLE_PYTHON:
            return candidate
    return None


# tests/conftest.py turns XLA:CPU's LLVM optimisations off for the suite's JAX; Kaggle's jax
# 0.7.2 runs its unoptimised code far slower than it saves in compiling (the TPU notebook's JAX
# dry run: 155 CPU-s so, 84 with them on this AMD EPYC; XLA:TPU's compile the same either way).
_UNOPTIMISED = "--xla_backend_optimization_level=0"


def environment() -> dict:
    """The venv's processes' environment: this run's, without what points into the suite's own
    Python, JAX or Keras, and with XLA:CPU's optimisations on."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "JAX_", "KERAS_", "TF_CPP"))}
    env.pop("VIRTUAL_ENV", None)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if f != _UNOPTIMISED]
    if flags:
        env["XLA_FLAGS"] = " ".join(flags)
    else:
        env.pop("XLA_FLAGS", None)
    return env


_STARTED: list[subprocess.Popen] = []  # Held until this process ends.


def start(caches: pathlib.Path) -> None:
    """Starts the install in `caches`/kaggle_tpu unless a process of this run already has."""
    folder = caches / "kaggle_tpu"
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        return
    base = python_312()
    if base is None:
        (folder / "exit").write_text("no python\n")
        return
    with (folder / "install.log").open("w") as log:
        proc = subprocess.Popen(["sh", "-c", _INSTALL, base, str(folder), kaggle.KAGGLE_TPU_STACK],
                                stdout=log, stderr=subprocess.STDOUT, env=environment(),
                                cwd=folder, start_new_session=True)
    (folder / "pid").write_text(f"{proc.pid}\n")
    _STARTED.append(proc)


def stop(caches: pathlib.Path) -> None:
    """Ends an install still running when the run ends (a run stopped early, `--collect-only`).
    For the process that owns `caches` alone: xdist shuts an idle worker down while the other may
    still be waiting for the install."""
    folder = caches / "kaggle_tpu"
    if (folder / "pid").exists() and not (folder / "exit").exists():
        try:
            os.killpg(int((folder / "pid").read_text()), signal.SIGKILL)
        except ProcessLookupError:
            pass


def ready(caches: pathlib.Path, timeout: float = 1800) -> tuple[pathlib.Path, dict] | None:
    """(its python, a clean environment with no pip.conf: the bundle installs offline) once the
    install has ended; None without Kaggle's Python. Starts the install if nothing has."""
    folder = caches / "kaggle_tpu"
    start(caches)
    deadline = time.monotonic() + timeout
    while not (folder / "exit").exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"the Kaggle-stack venv was not installed within {timeout:.0f} s: "
                                 + (folder / "install.log").read_text()[-3000:])
        time.sleep(0.5)
    status = (folder / "exit").read_text().strip()
    if status == "no python":
        return None
    assert status == "0", (folder / "install.log").read_text()[-4000:]
    env = environment()
    env["PIP_CONFIG_FILE"] = os.devnull  # From here on no index, find-links or constraints.
    return folder / "venv" / "bin" / "python", env
