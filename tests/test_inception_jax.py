"""InceptionFeatures and MiFIDCallback on the JAX backend, against this (TensorFlow) process.

This process runs Keras on TensorFlow (conftest imports it), so the JAX side runs once in a
subprocess (tests/jax_inception_worker.py, KERAS_BACKEND=jax, two XLA host devices) and each test
checks one of its results. Both sides use the same random-init InceptionV3 weights file.
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from monet_tf.scoring import inception
from monet_tf.scoring import metrics

# Its module fixture serves every test here: one xdist worker runs them all (--dist loadgroup).
pytestmark = pytest.mark.xdist_group("inception_jax")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 2  # per replica, as in the worker


def _env() -> dict:
    """The worker's environment. It builds several identical Inception steps (one per
    InceptionFeatures), as the README's JAX run scores with one of the same shape: the suite's
    compilation cache (tests/conftest.py) compiles each distinct program once."""
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.update(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2",
               XLA_FLAGS=env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2")
    return env


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The TF features of the shared inputs, and what the JAX worker computed from them."""
    import keras

    out = tmp_path_factory.mktemp("inception_jax")
    rng = np.random.default_rng(0)
    inputs = {
        "small": rng.integers(0, 256, size=(2, 40, 48, 3), dtype=np.uint8),
        "images": rng.integers(0, 256, size=(5, 40, 48, 3), dtype=np.uint8),  # uneven vs 2 and 4
        "photos": rng.uniform(-1, 1, size=(5, 32, 32, 3)).astype(np.float32),
        "monets": rng.uniform(-1, 1, size=(6, 32, 32, 3)).astype(np.float32),
    }
    np.savez(out / "inputs.npz", **inputs)
    # Started first: its initial InceptionV3 build (~25 s of compiles) overlaps the TF side below.
    # Its output goes to a file: a pipe nobody reads while the TF side runs could fill and block it.
    log_path = out / "worker.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, os.path.join(REPO, "tests", "jax_inception_worker.py"),
                                 str(out)], stdout=log, stderr=subprocess.STDOUT,
                                env=_env(), cwd=REPO)
        try:
            keras.utils.set_random_seed(0)
            tf_features = inception.InceptionFeatures(None, batch_size=BATCH)
            staging = out / "staging.weights.h5"
            tf_features.model.save_weights(str(staging))
            os.replace(staging, out / "inc.weights.h5")  # the worker waits for this name
            expected = tf_features(inputs["images"])
            proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, log_path.read_text()[-5000:]
    results = dict(np.load(out / "results.npz"))
    info = json.loads((out / "results.json").read_text())
    return {"tf": expected, "jax": results, "info": info}


def _close(got, want, rel=1e-3):
    """Equal within `rel` of the features' scale (random-init features are small numbers)."""
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=rel, atol=rel * float(np.abs(want).max()))


def test_jax_keras_ops_resize_and_scaling_match_the_tf_data_ones(run):
    jax = run["jax"]
    for kind in ("uint8", "float"):
        got, want = jax[f"resize_keras_{kind}"], jax[f"resize_tf_{kind}"]
        assert got.shape == (2, 299, 299, 3) and got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_jax_features_equal_the_tensorflow_ones_for_the_same_weights(run):
    features = run["jax"]["single"]
    assert run["info"]["single_global_batch"] == BATCH  # no keras.distribution: one device
    assert features.shape == (5, inception.FEATURE_DIM)
    assert np.isfinite(features).all() and features.std() > 0
    assert not np.allclose(features[0], features[1])
    _close(features, run["tf"])


def test_jax_data_parallel_over_two_devices_equals_one_device_for_uneven_n(run):
    info = run["info"]
    assert info["devices"] == 2
    assert info["multi_global_batch"] == 2 * BATCH  # batch_size x DataParallel devices
    assert info["weights_devices"] == 2  # Inception's variables replicated on both
    _close(run["jax"]["multi"], run["jax"]["single"], rel=1e-4)


def test_jax_mifid_callback_scores_the_generator_translations(run):
    info = run["info"]
    scores = info["scores"]
    assert set(scores) >= {"mifid", "fid", "memorization"}
    assert all(math.isfinite(scores[key]) for key in ("mifid", "fid", "memorization")), scores
    assert scores["mifid"] == pytest.approx(metrics.mifid(scores["fid"], scores["memorization"]))
    # The generator got the padded global batches (5 photos -> 2 x 4) split over both devices...
    assert info["callback_global_batch"] == 2 * BATCH
    assert info["transform_inputs"] == [[2, [4, 32, 32, 3]], [2, [4, 32, 32, 3]]]
    # ...and its uint8 output, resized inside the jitted step, scores as the host-resized copy does.
    assert scores["memorization"] == pytest.approx(info["expected_memorization"], rel=1e-3)


def test_jax_rejects_a_tf_distribute_strategy_with_the_way_to_set_devices(run):
    message = run["info"]["tf_strategy_error"]
    assert message is not None and "keras.distribution" in message
