"""Instance norm, reflection padding and upsampling written for accelerators
(monet_tf.models.layers): equal to the reference layers and to the papers' definitions, in
outputs and gradients, on both backends; a checkpoint of one restores into the other."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module", params=["tensorflow", "jax"])
def report(request, tmp_path_factory):
    env = {**os.environ, "KERAS_BACKEND": request.param, "JAX_PLATFORMS": "cpu",
           "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    workdir = tmp_path_factory.mktemp(f"kernels_{request.param}")
    done = subprocess.run([sys.executable, os.path.join(REPO, "tests", "kernels_worker.py"),
                           str(workdir)], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    result = json.loads(lines[-1][len("REPORT "):])
    assert result["backend"] == request.param
    return result


def test_one_pass_instance_norm_is_group_norm_and_the_paper(report):
    # Outputs ~N(0, 1): float32 rounding of an input with mean 3 and std 2 is ~1e-6.
    assert report["norm_output_vs_group_norm"] < 1e-5
    assert report["norm_grad_vs_group_norm"] < 1e-5 * report["norm_grad_scale"]
    for method, diff in report["norm_output_vs_paper"].items():
        assert diff < 1e-5, method
    # bfloat16 in and out (statistics in float32): within bf16's 8 bits of a |y| <= ~3.
    assert report["norm_bf16_dtype"] == "bfloat16"
    assert report["norm_bf16_vs_paper"] < 3 * 2**-8


def test_gather_reflection_padding_is_numpy_reflect(report):
    for p in (1, 3):
        assert report[f"pad{p}_vs_numpy"] == {"pad": 0.0, "gather": 0.0}
        assert report[f"pad{p}_grad_gather_vs_pad"] < 1e-6


def test_depth_to_space_is_the_periodic_shuffle_and_icnr_starts_as_nearest(report):
    assert report["depth_to_space_vs_definition"] == 0.0
    assert report.get("depth_to_space_vs_tf", 0.0) == 0.0
    assert report["icnr_vs_nearest"] < 1e-6


def test_networks_agree_and_checkpoints_restore_across(report):
    for net in ("photo_to_monet", "monet_critic"):
        assert report[f"{net}_output_diff"] < 1e-5, net
        assert report[f"{net}_input_grad_diff"] < 1e-4 * report[f"{net}_input_grad_scale"], net
    assert report["checkpoint_moved_from_init"] > 0.1  # The restore has something to show.
    assert report["checkpoint_restored_diff"] < 1e-5
