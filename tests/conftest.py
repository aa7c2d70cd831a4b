"""Shared test set-up: two logical CPU devices (for MirroredStrategy tests) and data locations."""

import os
import pathlib
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("WANDB_MODE", "offline")
# Caches shared by this pytest run's processes (made by the first; xdist's workers and every
# subprocess inherit the paths), new each run, so that a run here costs what it costs on a fresh
# CI machine. The JAX tests' subprocesses compile the same tiny steps again and again: XLA's
# cache. `auto` precision on a CPU measures once and caches (monet_tf.models.precision_probe): the
# tests' measurements stay out of the user's ~/.cache.
_OWN_CACHES = "MONET_TF_TEST_CACHES" not in os.environ
if _OWN_CACHES:
    os.environ["MONET_TF_TEST_CACHES"] = tempfile.mkdtemp(prefix="monet_tf_tests-")
_CACHES = pathlib.Path(os.environ["MONET_TF_TEST_CACHES"])
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_CACHES / "jax"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("MONET_TF_PRECISION_CACHE", str(_CACHES / "precision.json"))
# XLA:CPU compiles the tests' steps (JAX's, and TensorFlow's jit_compile) far more often than it
# runs them on tiny images: without LLVM's optimisations a JAX step runner takes ~28% less CPU
# (measured on this Intel Xeon). Rounding may differ from an optimised build (2e-5 after two
# float32 steps: FMA contraction), never between the runs a test compares, which share the flag.
# The suite sets XLA_FLAGS itself (a caller's device count would change what the tests see);
# its subprocesses inherit them and add their own (Kaggle's venv drops this one:
# tests/kaggle_venv.py).
os.environ["XLA_FLAGS"] = "--xla_backend_optimization_level=0"

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tests import kaggle_venv  # noqa: E402
from tests.suite_timeline import pytest_runtest_protocol  # noqa: E402,F401 - the hook

# Must happen before TensorFlow initialises its devices: every test process sees /cpu:0 and /cpu:1.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

REPO = pathlib.Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO / "tfrecords" / "sample"
SHARED_DATA = REPO.parent / "shared" / "data" / "gan-getting-started"


@pytest.fixture(scope="session")
def repo_root() -> pathlib.Path:
    return REPO


@pytest.fixture(scope="session")
def sample_dir() -> pathlib.Path:
    """The bundled sample in the competition schema (monet_tfrec/, photo_tfrec/)."""
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """The real competition data beside the repo; tests that need it skip when it is absent."""
    if not (SHARED_DATA / "photo_tfrec").is_dir():
        pytest.skip(f"competition data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def two_cpu_strategy() -> tf.distribute.MirroredStrategy:
    """One strategy per test process, as in training: every MirroredStrategy numbers its
    collective ops from the same instance key, so a second one over the same devices collides
    with the first ("Collective instance 100 expected type ...")."""
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def pytest_collection_finish(session):
    """The Kaggle-stack venv's install starts as soon as its test is collected (by whichever
    process of the run gets there first), so that other tests run while it installs."""
    if any(item.nodeid.startswith(kaggle_venv.TEST) for item in session.items):
        kaggle_venv.start(_CACHES)


def pytest_unconfigure(config):
    if _OWN_CACHES:
        kaggle_venv.stop(_CACHES)
        shutil.rmtree(_CACHES, ignore_errors=True)


def pytest_collection_modifyitems(items):
    """The modules with end-to-end (`slow`) tests first, each module's tests still together and
    in order. pytest-xdist (--dist loadgroup) hands out a group's tests by group size first, then
    single tests in collection order: the slow single tests of test_train*.py, collected last,
    had run at the end with one core left idle beside them."""
    slow = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module.__name__ not in slow)  # A stable sort.
