"""The JAX step is the TensorFlow step's algorithm: same losses and weights from the same start,
and on JAX the result does not depend on how many devices the global batch is sharded over
(CycleGAN and CUT).

Each run is its own process (Keras picks its backend once per process): tests/step_runner.py.
"""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
RUNNER = REPO / "tests" / "step_runner.py"
NETWORKS = ("photo_to_monet", "monet_to_photo", "monet_critic", "photo_critic", "nce_heads")

pytest.importorskip("jax", reason="the JAX tests need jax (pip install jax)")


def run_steps(backend, devices, weights_dir, out, *flags, steps=3):
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "XLA_FLAGS")}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, str(RUNNER), backend, str(devices), str(weights_dir), str(out), *flags,
         f"--steps={steps}"],
        capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"backend {backend} devices {devices} steps {steps}" in result.stdout, result.stdout
    return dict(np.load(out))


def max_weight_difference(a, b, prefix=""):
    keys = [k for k in a if k.split("/")[0] in NETWORKS]
    assert keys and all(prefix + k in b for k in keys)
    return max(float(np.max(np.abs(a[k] - b[prefix + k]))) for k in keys)


def test_tensorflow_and_jax_steps_agree_from_the_same_weights(tmp_path):
    tf_run = run_steps("tensorflow", 1, tmp_path / "weights", tmp_path / "tf.npz")
    jax_run = run_steps("jax", 1, tmp_path / "weights", tmp_path / "jax.npz")
    losses = [k for k in tf_run if k.startswith("loss/")]
    assert len(losses) == 7
    for key in losses:
        np.testing.assert_allclose(jax_run[key], tf_run[key], rtol=1e-4, atol=1e-4, err_msg=key)
    assert max_weight_difference(tf_run, jax_run) < 1e-4
    # Both started from the saved weights and trained: the comparison is not of two copies.
    assert max_weight_difference(tf_run, tf_run, prefix="initial/") > 10 * 1e-4
    assert int(tf_run["iterations"]) == int(jax_run["iterations"]) == 3


@pytest.mark.slow
def test_two_jax_devices_equal_one_with_pools_and_diffaugment(tmp_path):
    assert_two_devices_equal_one(tmp_path, "--pool=1", "--diffaugment=color,translation,cutout")


def assert_two_devices_equal_one(tmp_path, *flags, tolerance=1e-5):
    one = run_steps("jax", 1, tmp_path / "weights", tmp_path / "one.npz", *flags)
    two = run_steps("jax", 2, tmp_path / "weights", tmp_path / "two.npz", *flags)
    for key in (k for k in one if k.startswith("loss/")):
        np.testing.assert_allclose(two[key], one[key], rtol=1e-5, atol=1e-5, err_msg=key)
    assert max_weight_difference(one, two) < tolerance
    assert_every_network_moved(one, 100 * tolerance)


def assert_every_network_moved(run, by):
    names = {k.split("/")[0] for k in run if k.split("/")[0] in NETWORKS}
    assert names
    for name in names:  # Every network moved far more than the tolerance.
        moved = max(float(np.max(np.abs(run[k] - run[f"initial/{k}"])))
                    for k in run if k.startswith(f"{name}/"))
        assert moved > by, (name, moved)


def test_cut_on_tensorflow_and_jax_agrees_from_the_same_weights(tmp_path):
    """Every location of three 8x8 layers is a patch, so no random draw differs between the
    backends' RNGs: the two steps must compute the same thing. One step: over three, float
    noise grows to 7% of what the weights moved (the losses still agree within 2e-5), measured."""
    flags = ["--kind=cut", "--nce_layers=down_2,block_1,block_5", "--nce_patches=64"]
    tf_run = run_steps("tensorflow", 1, tmp_path / "weights", tmp_path / "tf.npz", *flags, steps=1)
    jax_run = run_steps("jax", 1, tmp_path / "weights", tmp_path / "jax.npz", *flags, steps=1)
    losses = [k for k in tf_run if k.startswith("loss/")]
    assert len(losses) == 5
    for key in losses:
        np.testing.assert_allclose(jax_run[key], tf_run[key], rtol=1e-5, atol=1e-5, err_msg=key)
    assert max_weight_difference(tf_run, jax_run) < 1e-5  # Measured: 2e-7.
    assert_every_network_moved(tf_run, 50 * 1e-5)


@pytest.mark.slow
def test_two_jax_devices_equal_one_for_fastcut_with_diffaugment(tmp_path):
    """Random patch locations, flips and DiffAugment: one program over the global batch draws
    the same numbers however many devices it is sharded over. At lr 1e-4: at the runner's 1e-3,
    FastCUT's lambda_NCE 10 with DiffAugment amplifies float noise into 8e-4 by the third step
    (measured; 7.7e-8 at 1e-4, with every network moving 1e-4 or more)."""
    assert_two_devices_equal_one(tmp_path, "--kind=fastcut", "--lr=1e-4",
                                 "--diffaugment=color,translation,cutout", tolerance=1e-6)
