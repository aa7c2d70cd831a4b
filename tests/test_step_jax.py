"""The JAX step is the TensorFlow step's algorithm: same losses and weights from the same start,
and on JAX the result does not depend on how many devices the global batch is sharded over
(CycleGAN, CUT and FastCUT).

Every case runs in one of two processes (Keras picks its backend once per process), TensorFlow's
then JAX's over two host devices: tests/step_runner.py. A case pair shares its starting weights.
"""

import json
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
# One fixture runs every case: one xdist worker runs every test here (--dist loadgroup).
pytestmark = pytest.mark.xdist_group("step_jax")

# Every location of three 8x8 layers is a patch, so no random draw differs between the backends'
# RNGs: the two CUT steps must compute the same thing. One step: over three, float noise grows to
# 7% of what the weights moved (the losses still agree within 2e-5), measured.
CUT = ["--kind=cut", "--nce_layers=down_2,block_1,block_2", "--nce_patches=64", "--steps=1"]
POOL_DA = ["--pool=1", "--diffaugment=color,translation,cutout"]
# In float64: in float32, FastCUT's lambda_NCE 10 with DiffAugment amplifies float noise into
# 8e-4 of the total loss by the third step at lr 1e-3, and how much depends on the XLA build's
# rounding (1.4e-5 at 1e-4 on six blocks once LLVM's optimisations were off), measured.
FASTCUT = ["--kind=fastcut", "--dtype=float64", "--diffaugment=color,translation,cutout",
           "--nce_layers=padded_input,down_1,down_2,block_1,block_2"]
# TensorFlow against JAX in float64 over two steps: in float32 the backends' rounding differs by
# ~1e-3 of a gradient where instance norm meets a near-constant channel, and a tiny net's third
# step can turn 1e-7 into 1e-3 (measured on an Intel Xeon in float64 too: 3.7e-8 after one
# step, 1.3e-7 after two, 1.1e-3 after three, while the losses agree to 2e-6). Two steps still
# carry the optimizer's moments and counters from one step into the next.
CYCLEGAN = ["--dtype=float64", "--steps=2"]
CASES = {  # name: (backend, devices, weights shared with, flags)
    "tf/cyclegan": ("tensorflow", 1, "cyclegan", CYCLEGAN),
    "tf/cut": ("tensorflow", 1, "cut", CUT),
    "jax/cyclegan": ("jax", 1, "cyclegan", CYCLEGAN),
    "jax/cut": ("jax", 1, "cut", CUT),
    "jax/pool_da/1": ("jax", 1, "pool_da", POOL_DA),
    "jax/pool_da/2": ("jax", 2, "pool_da", POOL_DA),
    "jax/fastcut/1": ("jax", 1, "fastcut", FASTCUT),
    "jax/fastcut/2": ("jax", 2, "fastcut", FASTCUT),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """{case: its saved losses and weights}; TensorFlow's process first (it writes the weights
    the JAX cases start from)."""
    root = tmp_path_factory.mktemp("steps")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO))
    for backend in ("tensorflow", "jax"):
        cases = [{"name": name, "devices": devices, "weights_dir": str(root / "weights" / shared),
                  "out": str(root / f"{name.replace('/', '_')}.npz"), "flags": flags}
                 for name, (b, devices, shared, flags) in CASES.items() if b == backend]
        listing = root / f"{backend}.json"
        listing.write_text(json.dumps(cases))
        result = subprocess.run([sys.executable, str(RUNNER), backend, "2", str(listing)],
                                capture_output=True, text=True, timeout=1500, env=env)
        assert result.returncode == 0, result.stderr[-4000:]
        for case in cases:
            assert f"case {case['name']} done" in result.stdout, result.stdout
    return {name: dict(np.load(root / f"{name.replace('/', '_')}.npz")) for name in CASES}


def max_weight_difference(a, b, prefix=""):
    keys = [k for k in a if k.split("/")[0] in NETWORKS]
    assert keys and all(prefix + k in b for k in keys)
    return max(float(np.max(np.abs(a[k] - b[prefix + k]))) for k in keys)


def test_tensorflow_and_jax_steps_agree_from_the_same_weights(runs):
    tf_run, jax_run = runs["tf/cyclegan"], runs["jax/cyclegan"]
    losses = [k for k in tf_run if k.startswith("loss/")]
    assert len(losses) == 7
    for key in losses:
        np.testing.assert_allclose(jax_run[key], tf_run[key], rtol=1e-6, atol=1e-6, err_msg=key)
    assert max_weight_difference(tf_run, jax_run) < 1e-5
    # Both started from the saved weights and trained: the comparison is not of two copies.
    assert max_weight_difference(tf_run, tf_run, prefix="initial/") > 100 * 1e-5
    assert int(tf_run["iterations"]) == int(jax_run["iterations"]) == 2
    assert tf_run["photo_to_monet/0"].dtype == jax_run["photo_to_monet/0"].dtype == np.float64


def test_two_jax_devices_equal_one_with_pools_and_diffaugment(runs):
    assert_two_devices_equal_one(runs["jax/pool_da/1"], runs["jax/pool_da/2"])


def assert_two_devices_equal_one(one, two, tolerance=1e-5):
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


def test_cut_on_tensorflow_and_jax_agrees_from_the_same_weights(runs):
    tf_run, jax_run = runs["tf/cut"], runs["jax/cut"]
    losses = [k for k in tf_run if k.startswith("loss/")]
    assert len(losses) == 5
    for key in losses:
        np.testing.assert_allclose(jax_run[key], tf_run[key], rtol=1e-5, atol=1e-5, err_msg=key)
    assert max_weight_difference(tf_run, jax_run) < 1e-5  # Measured: 2e-7.
    assert_every_network_moved(tf_run, 50 * 1e-5)


def test_two_jax_devices_equal_one_for_fastcut_with_diffaugment(runs):
    """Random patch locations, flips and DiffAugment: one program over the global batch draws
    the same numbers however many devices it is sharded over."""
    assert_two_devices_equal_one(runs["jax/fastcut/1"], runs["jax/fastcut/2"], tolerance=1e-6)


def test_each_case_ran_on_its_backend_and_devices(runs):
    for name, (backend, devices, _, flags) in CASES.items():
        steps = next((int(f.split("=")[1]) for f in flags if f.startswith("--steps=")), 3)
        assert runs[name]["meta"].tolist() == [backend, str(devices), str(steps)], name
