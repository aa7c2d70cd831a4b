"""bench/profile_step.py and monet_tf.training.hlo_costs: FLOPs as the convolution's definition
and XLA count them, op categories, the roofline's arithmetic, and a real profile of the JAX step
on this CPU."""

import json
import os
import subprocess
import sys

import pytest

from monet_tf.training import hlo_costs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.xdist_group("profile_step")


def _jax_programs(code: str) -> dict:
    """Runs `code` (which fills `out`) in a JAX process; its `out` back as JSON."""
    script = ("import json, jax, jax.numpy as jnp\nout = {}\n" + code
              + "\nprint('OUT ' + json.dumps(out))")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("OUT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1][4:])


@pytest.fixture(scope="module")
def conv_programs():
    """A VALID and a SAME stride-2 convolution with their gradients, compiled by XLA:CPU: the
    optimized text and XLA's own FLOP count of each."""
    return _jax_programs('''
x, w = jnp.ones((2, 17, 16, 8)), jnp.ones((3, 3, 8, 12))
for name, stride, padding in (("valid", 1, "VALID"), ("same_s2", 2, "SAME")):
    f = lambda x, w: (jax.lax.conv_general_dilated(
        x, w, (stride, stride), padding, dimension_numbers=("NHWC", "HWIO", "NHWC")) ** 2).sum()
    for program, fn in (("forward", jax.jit(f)), ("grad", jax.jit(jax.grad(f, (0, 1))))):
        compiled = fn.lower(x, w).compile()
        out[f"{name}_{program}"] = [compiled.as_text(), compiled.cost_analysis()["flops"]]
''')


def _conv_ops(text):
    return [op for op in hlo_costs.program_ops(text) if op.category.startswith("convolution")]


def test_a_convolution_costs_what_its_definition_says(conv_programs):
    """2 x N x H_out x W_out x k_h x k_w x C_in x C_out for a VALID convolution."""
    (conv,) = _conv_ops(conv_programs["valid_forward"][0])
    assert conv.category == "convolution forward"
    assert conv.flops == 2 * 2 * 15 * 14 * 3 * 3 * 8 * 12


def test_counts_equal_xlas_and_the_backward_pass_is_named(conv_programs):
    """Padding and a stride-2 gradient's dilation holes are not counted, as XLA does not."""
    for key, (text, xla) in conv_programs.items():
        total = sum(op.flops for op in hlo_costs.program_ops(text))
        assert abs(total - xla) <= 1e-6 * xla + 1, key
    for name in ("valid", "same_s2"):
        categories = sorted(op.category for op in _conv_ops(conv_programs[f"{name}_grad"][0]))
        assert categories == ["convolution backward-data", "convolution backward-filter",
                              "convolution forward"], name


CUDNN = """HloModule jit_train_step, entry_computation_layout={()}

ENTRY %main.1 (x: bf16[8,64,64,32], w: bf16[3,3,32,64], dy: bf16[8,64,64,64]) -> bf16[3,3,32,64] {
  %x = bf16[8,64,64,32]{3,2,1,0} parameter(0)
  %w = bf16[3,3,32,64]{3,2,1,0} parameter(1)
  %dy = bf16[8,64,64,64]{3,2,1,0} parameter(2)
  %cudnn-conv.1 = (bf16[8,64,64,64]{3,2,1,0}, u8[0]{0}) custom-call(bf16[8,64,64,32]{3,2,1,0} %x, bf16[3,3,32,64]{3,2,1,0} %w), window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f, custom_call_target="__cudnn$convForward"
  %cudnn-conv.2 = (bf16[3,3,32,64]{3,2,1,0}, u8[0]{0}) custom-call(bf16[8,64,64,32]{3,2,1,0} %x, bf16[8,64,64,64]{3,2,1,0} %dy), window={size=64x64 pad=1_1x1_1}, dim_labels=f01b_i01o->01bf, custom_call_target="__cudnn$convBackwardFilter"
  ROOT %gte = bf16[3,3,32,64]{3,2,1,0} get-tuple-element(%cudnn-conv.2), index=0
}
"""


def test_cudnn_custom_calls_are_counted_and_named():
    """XLA:GPU's cost analysis leaves cuDNN's convolutions out; hlo_costs counts them."""
    ops = {op.name: op for op in hlo_costs.program_ops(CUDNN)}
    forward, backward = ops["cudnn-conv.1"], ops["cudnn-conv.2"]
    assert forward.category == "convolution forward"
    assert backward.category == "convolution backward-filter"
    # SAME 3x3 on 64x64: each output row/column sees 3 taps but the two borders 2.
    taps = 64 * 3 - 2
    assert forward.flops == 2 * 8 * 64 * 32 * taps * taps
    assert forward.bytes == 2 * (8 * 64 * 64 * 32 + 3 * 3 * 32 * 64 + 8 * 64 * 64 * 64)
    assert backward.flops > 0


def test_roofline_places_each_op_at_its_bound():
    op = lambda flops, moved: hlo_costs.Op("op", "fusion", "other fusions", flops, moved, "")  # noqa: E731
    # 1 TFLOP/s and 1 GB/s: ridge at 1,000 FLOP per byte.
    roofline = hlo_costs.Roofline(1e12, 1e9, [op(2e12, 1e9), op(1e9, 3e9)])
    assert [o.bound(1e12, 1e9) for o in roofline.ops] == ["compute", "memory"]
    assert roofline.seconds == pytest.approx(2.0 + 3.0)
    assert roofline.share_of_peak == pytest.approx((2e12 + 1e9) / 5.0 / 1e12)
    assert roofline.by_category()["other fusions"]["memory_bound"] == 1
    assert roofline.seconds_overlapped == roofline.seconds


MEMORY_SPACE = """HloModule jit_train_step, entry_computation_layout={()}

ENTRY %main.1 (x: bf16[1024,1024]) -> bf16[1024,1024] {
  %x = bf16[1024,1024]{1,0} parameter(0)
  %copy-start.1 = (bf16[1024,1024]{1,0:S(1)}, bf16[1024,1024]{1,0}, u32[]) copy-start(bf16[1024,1024]{1,0} %x)
  %copy-done.1 = bf16[1024,1024]{1,0:S(1)} copy-done((bf16[1024,1024]{1,0:S(1)}, bf16[1024,1024]{1,0}, u32[]) %copy-start.1)
  ROOT %add.1 = bf16[1024,1024]{1,0} add(bf16[1024,1024]{1,0:S(1)} %copy-done.1, bf16[1024,1024]{1,0:S(1)} %copy-done.1)
}
"""


def test_an_asynchronous_transfer_counts_once_and_can_hide_under_compute():
    """XLA:TPU's memory-space prefetch (copy-start ... copy-done) moves its array in and out
    once; the roofline's second bound runs it under the compute around it."""
    ops = {op.name: op for op in hlo_costs.program_ops(MEMORY_SPACE)}
    assert set(ops) == {"copy-start.1", "add.1"}  # The done is a wait, not an op.
    array = 1024 * 1024 * 2
    assert ops["copy-start.1"].asynchronous and ops["copy-start.1"].bytes == 2 * array
    assert not ops["add.1"].asynchronous and ops["add.1"].bytes == 3 * array
    roofline = hlo_costs.Roofline(1e12, 1e9, list(ops.values()))
    assert roofline.seconds == pytest.approx(5 * array / 1e9)
    assert roofline.seconds_overlapped == pytest.approx(3 * array / 1e9)


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    trace = tmp_path_factory.mktemp("trace")
    done = subprocess.run(
        [sys.executable, os.path.join(REPO, "bench", "profile_step.py"), "--platform", "cpu",
         "--image_size", "32", "--ngf", "8", "--generator", "resnet_2blocks", "--precision",
         "float32", "--steps", "2", "--trace_dir", str(trace),
         "--set", "model.ndf=16", "--against", "model.instance_norm=one_pass"],
        capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, json.loads(done.stdout.splitlines()[-1][len("result "):]), trace


def test_the_profile_sorts_the_steps_time_by_category(profile):
    out, report, _ = profile
    rows = report["categories"]
    for category in ("convolution forward", "convolution backward-data",
                     "convolution backward-filter", "norm reductions",
                     "pads, copies and transposes", "other fusions"):
        assert rows[category]["ms"] > 0, category
        assert category in out
    ran = sum(row["ms"] for row in rows.values())
    assert rows["not in the program"]["ms"] < 0.05 * ran  # Every op is matched to the program.
    assert 0 < report["busy_ms"] <= report["wall_ms"] * 1.05
    assert report["idle_ms"] == pytest.approx(max(0, report["wall_ms"] - report["busy_ms"]))
    assert len(report["top"]) == 15
    assert report["top"] == sorted(report["top"], key=lambda op: -op["ms"])
    assert abs(report["program_flops"] - report["flops"]) < 0.01 * report["flops"]
    assert report["overrides"] == ["model.ndf=16"] and report["ndf"] == 16


def test_against_profiles_the_option_after_the_step_as_set(profile):
    out, report, _ = profile
    after = report["sides"]["model.instance_norm=one_pass"]
    assert after["overrides"] == ["model.ndf=16", "model.instance_norm=one_pass"]
    assert report["sides"]["as-set"]["wall_ms"] == report["wall_ms"]
    # The same convolutions either way; the norms are other ops.
    conv = lambda side: sum(row["flops"] for category, row in side["categories"].items()  # noqa: E731
                            if category.startswith("convolution"))
    assert conv(after) == pytest.approx(conv(report), rel=1e-3) and conv(after) > 0
    assert after["categories"]["norm reductions"]["ms"] > 0
    assert "ms/step" in out and "wall" in out


def test_the_trace_is_kept_for_tensorboard(profile):
    _, _, trace = profile
    assert list(trace.rglob("*.xplane.pb"))
