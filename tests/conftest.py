"""Shared test set-up: two logical CPU devices (for MirroredStrategy tests) and data locations."""

import os
import pathlib
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("WANDB_MODE", "offline")
# The JAX tests' subprocesses compile the same tiny steps again and again: share XLA's cache.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), "monet_tf_test_jax_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
# `auto` precision on a CPU measures once and caches (monet_tf.models.precision_probe): the tests'
# runs keep their measurements out of the user's ~/.cache.
os.environ.setdefault("MONET_TF_PRECISION_CACHE",
                      os.path.join(tempfile.gettempdir(), "monet_tf_test_precision.json"))

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

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
