"""bench/step_jax.py runs standalone without TensorFlow and reports its fields (a smoke test: no
timings are checked)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("jax", reason="the JAX bench needs jax (pip install jax)")
# One xdist worker runs both, one after the other: the second reads the first's precision probe
# and compiled CycleGAN step from the suite's caches (tests/conftest.py) instead of redoing them.
pytestmark = pytest.mark.xdist_group("bench_jax")

REPO = pathlib.Path(__file__).resolve().parents[1]
WORKER = REPO / "bench" / "step_jax.py"
# The smallest step both paths time (the critic, ndf 64, keeps it over a GFLOP).
SMALL = ["--image_size", "32", "--ngf", "8", "--generator", "resnet_2blocks", "--rounds", "1",
         "--steps", "1"]


def _env() -> dict:
    """With LLVM's optimisations, which the suite turns off (tests/conftest.py): a bench runs its
    step several times, 2.5 s each without them against 0.29 s with them, for the same compile
    time (21 CPU-s a run instead of 30, measured)."""
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env.update(PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2",
               XLA_FLAGS=env.get("XLA_FLAGS", "").replace("--xla_backend_optimization_level=0", ""))
    return env

# The worker as a machine without TensorFlow runs it: importing tensorflow (or
# monet_tf.runtime.devices, which imports it) fails.
NO_TF = (
    "import runpy, sys\n"
    "sys.modules['tensorflow'] = None\n"
    "sys.modules['monet_tf.runtime.devices'] = None\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


@pytest.mark.slow
def test_step_jax_standalone_reports_rate_flops_and_peak_without_tensorflow():
    result = subprocess.run(
        [sys.executable, "-c", NO_TF, str(WORKER), "--platform", "cpu", *SMALL],
        capture_output=True, text=True, timeout=300, env=_env())
    assert result.returncode == 0, result.stderr[-4000:]
    out = result.stdout
    for text in ("first call (trace + compile + 1 step)", "round 1:", "pairs/s", "GFLOP/step",
                 "% peak", "conv peak"):
        assert text in out, (text, out)
    lines = [line for line in out.splitlines() if line.startswith("result ")]
    assert len(lines) == 1, out
    report = json.loads(lines[0][len("result "):])
    assert report["platform"] == "cpu" and report["devices"] == 1
    # --precision auto: on a CPU the faster of the two as the probe measured it on XLA:CPU.
    probe = report["precision_probe"]
    assert probe["float32_ms"] > 0 and probe["bfloat16_ms"] > 0
    assert report["policy"] == probe["choice"] and report["global_batch"] == 1
    assert report["pairs_per_s"] > 0 and report["first_call_s"] > 0
    assert report["flops"] > 1e9  # XLA's count of the 32 px step: ~1.6 GFLOP.
    assert report["conv_peak_flops"] > 0 and report["peak_flops"] > 0
    assert report["loss"] == report["loss"]  # Not NaN.


@pytest.mark.slow
def test_step_jax_standalone_compares_fastcut_with_cyclegan_without_tensorflow():
    result = subprocess.run(
        [sys.executable, "-c", NO_TF, str(WORKER), "--platform", "cpu", *SMALL,
         "--model", "fastcut"],
        capture_output=True, text=True, timeout=300, env=_env())
    assert result.returncode == 0, result.stderr[-4000:]
    out = result.stdout
    for text in ("fastcut vs cyclegan", "cyclegan params: photo_to_monet",
                 "fastcut params: photo_to_monet", "ratio fastcut/cyclegan"):
        assert text in out, (text, out)
    lines = [line for line in out.splitlines() if line.startswith("result ")]
    assert len(lines) == 1, out
    report = json.loads(lines[0][len("result "):])
    assert report["model"] == "fastcut" and set(report["sides"]) == {"cyclegan", "fastcut"}
    cyclegan, fastcut = report["sides"]["cyclegan"], report["sides"]["fastcut"]
    for side in (cyclegan, fastcut):
        assert side["pairs_per_s"] > 0 and side["flops"] > 0 and side["loss"] == side["loss"]
    # The same generator and critic; FastCUT adds its projection heads instead of two networks.
    assert set(fastcut["params"]) == {"photo_to_monet", "monet_critic", "nce_heads"}
    for name in ("photo_to_monet", "monet_critic"):
        assert fastcut["params"][name] == cyclegan["params"][name]
    assert fastcut["flops"] < cyclegan["flops"]
    assert report["ratio"] == pytest.approx(fastcut["pairs_per_s"] / cyclegan["pairs_per_s"])
