"""Which Keras backend a run uses: chosen before Keras is imported, since Keras reads it once.

Imports neither Keras, TensorFlow nor JAX, so a CLI can call `select_backend` first thing.
Precedence: an explicit `--backend=jax|tensorflow`, else `KERAS_BACKEND` from the environment,
else the `auto` rule: JAX when `--strategy=tpu` and TensorFlow has no TPU support but JAX does
(Kaggle's TPU image since 2025: tensorflow-cpu beside jax[tpu]), TensorFlow otherwise.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
from typing import Callable

BACKENDS = ("auto", "jax", "tensorflow")
BACKEND_HELP = (
    "Keras backend: auto | jax | tensorflow. auto: jax with --strategy=tpu when TensorFlow has "
    "no TPU support but JAX does, else tensorflow (or KERAS_BACKEND from the environment)."
)
_FORCE_DEVICES = "--xla_force_host_platform_device_count"


class BackendError(RuntimeError):
    """The asked-for backend cannot be used here; the message names the flag and the fix."""


def _installed(*distributions: str) -> bool:
    for name in distributions:
        try:
            importlib.metadata.distribution(name)
            return True
        except importlib.metadata.PackageNotFoundError:
            continue
    return False


def tensorflow_has_tpu() -> bool:
    """A TensorFlow build that can drive a TPU is installed (tensorflow-cpu cannot)."""
    return _installed("tensorflow-tpu", "tf-nightly-tpu")


def jax_has_tpu() -> bool:
    """JAX and a libtpu for it are installed (as `pip install jax[tpu]` gives)."""
    return importlib.util.find_spec("jax") is not None and _installed("libtpu", "libtpu-nightly")


def jax_installed() -> bool:
    try:
        return importlib.util.find_spec("jax") is not None
    except (ImportError, ValueError):  # A None entry in sys.modules blocks it.
        return False


def choose_backend(flag: str = "auto", strategy: str = "cpu", environ=None,
                   tf_tpu: Callable[[], bool] = tensorflow_has_tpu,
                   jax_tpu: Callable[[], bool] = jax_has_tpu,
                   have_jax: Callable[[], bool] = jax_installed) -> str:
    """The backend name ("jax" or "tensorflow") for `--backend=flag --strategy=strategy`."""
    environ = os.environ if environ is None else environ
    if flag not in BACKENDS:
        raise BackendError(f"--backend={flag!r} is not one of {', '.join(BACKENDS)}")
    name = flag
    if name == "auto" and environ.get("KERAS_BACKEND"):
        name = environ["KERAS_BACKEND"]
        if name not in ("jax", "tensorflow"):
            raise BackendError(
                f"KERAS_BACKEND={name!r} is not supported by monet_tf: use jax or tensorflow")
    if name == "auto":
        name = "jax" if strategy == "tpu" and not tf_tpu() and jax_tpu() else "tensorflow"
    if name == "jax" and not have_jax():
        raise BackendError(
            "--backend=jax but JAX is not installed: pip install jax (CPU), 'jax[cuda12]' (GPU) "
            "or 'jax[tpu]' (TPU), or use --backend=tensorflow")
    return name


def select_backend(flag: str = "auto", strategy: str = "cpu", cpu_replicas: int = 1) -> str:
    """Chooses the backend and sets KERAS_BACKEND (and JAX's device flags) before Keras loads.

    On JAX, --strategy=cpu pins JAX to the host (JAX_PLATFORMS=cpu) and --cpu_replicas=N asks
    XLA for N host devices, so the multi-device path runs on any laptop.
    """
    name = choose_backend(flag, strategy)
    keras = sys.modules.get("keras")
    if keras is not None and keras.backend.backend() != name:
        raise BackendError(
            f"--backend={name}: Keras was already imported with the {keras.backend.backend()} "
            "backend in this process; choose the backend before importing Keras")
    os.environ["KERAS_BACKEND"] = name
    if name == "jax" and strategy == "cpu":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        if cpu_replicas > 1 and "jax" not in sys.modules:
            flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
                     if not f.startswith(_FORCE_DEVICES)]
            os.environ["XLA_FLAGS"] = " ".join([*flags, f"{_FORCE_DEVICES}={cpu_replicas}"])
    if name == "jax":
        try:  # After the flags above: JAX reads them when it is first imported.
            import jax  # noqa: F401
        except ImportError as err:
            raise BackendError(f"--backend=jax but JAX cannot be imported ({err}): pip install "
                               "jax (CPU), 'jax[cuda12]' (GPU) or 'jax[tpu]' (TPU), or use "
                               "--backend=tensorflow") from None
    return name


def flag_from_argv(argv: list[str], name: str, default: str) -> str:
    """The value of `--name=V` or `--name V` in argv, for the few flags needed before imports."""
    for i, arg in enumerate(argv):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
    return default


def select_backend_from_argv(argv: list[str], only: str | None = None) -> str:
    """For `python -m monet_tf.X` CLIs, whose modules import Keras at the top: reads --backend
    (and --strategy, --cpu_replicas) from argv first. `only`: the one backend the CLI can use.
    Prints the error and exits 2 when the choice cannot be honoured."""
    flag = flag_from_argv(argv, "backend", "auto")
    strategy = flag_from_argv(argv, "strategy", "cpu")
    try:
        if only is not None:
            if flag not in BACKENDS:
                raise BackendError(f"--backend={flag!r} is not one of {', '.join(BACKENDS)}")
            if flag not in ("auto", only):
                raise BackendError(f"--backend={flag}: this command runs on {only} only")
            flag = only
        return select_backend(flag, strategy, int(flag_from_argv(argv, "cpu_replicas", "1")))
    except (BackendError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
