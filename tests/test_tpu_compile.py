"""monet_tf.training.tpu_compile: a config's TPU programs through XLA:TPU on this CPU-only machine.

A tiny config (32 px, narrow nets) is compiled for a v5e-8 (eight compile-only chips) for every
family: the train step Keras' JAX trainer jits, the submission's translator (CycleGAN's, which
CUT and FastCUT share, and DCGAN's noise generator) and (CycleGAN) the MiFID Inception. `--effort=fast` halves the compile time; the program is the same, only less
optimised. Planted TPU-hostile constructs must fail with a message naming them.
"""

import importlib.util
import json
import pathlib
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from monet_tf.runtime import tpus

# Its module fixture serves every test here: one xdist worker runs them all (--dist loadgroup).
pytestmark = pytest.mark.xdist_group("tpu_compile")

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "tpu_tiny_config.py"
KINDS = ("cyclegan", "cut", "fastcut", "dcgan")
needs_libtpu = pytest.mark.skipif(
    importlib.util.find_spec("libtpu") is None,
    reason="libtpu (the TPU compiler) is not installed: pip install -e '.[test]' brings it")


def _cli(*args, script=("-m", "monet_tf", "compile-tpu"), env=None, timeout=900):
    return subprocess.run([sys.executable, *script, *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=timeout)


# The translator of CUT and FastCUT is CycleGAN's photo_to_monet (the same tiny ResNet, the same
# program), so it is compiled once, with CycleGAN's; DCGAN's is its noise generator.
PROGRAMS = {"cyclegan": {"train_step", "translate", "inception"}, "cut": {"train_step"},
            "fastcut": {"train_step"}, "dcgan": {"train_step", "translate"}}


def _compile_kind(kind: str, hlo_root: pathlib.Path) -> dict:
    programs = ",".join(sorted(PROGRAMS[kind]))
    result = _cli(f"--config={TINY}", f"--config.model.kind={kind}", "--topology=v5e-8",
                  "--effort=fast", f"--programs={programs}", "--json",
                  f"--hlo_dir={hlo_root / kind}")
    assert result.returncode == 0, result.stderr[-3000:]
    reports = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return {r["program"]: r for r in reports}


def _dry_run_compiling_for_v5e_8(workdir) -> subprocess.CompletedProcess:
    """run_train.py --dry_run --compile_for: the full config's programs through XLA:TPU first,
    then the dry run, then a plan from XLA's FLOPs; the reports saved beside the run."""
    return _cli(f"--config={TINY}", "--config.estimate.accelerator=v5e-8", "--dry_run",
                "--compile_for=v5e-8", "--compile_effort=fast", f"--workdir={workdir}",
                script=(str(REPO / "run_train.py"),), timeout=1800)


@pytest.fixture(scope="module")
def families(tmp_path_factory) -> tuple[dict, subprocess.CompletedProcess, pathlib.Path,
                                       pathlib.Path]:
    """({kind: {program: report}}, the dry run, its workdir, the folder of the other families'
    optimized programs): CycleGAN's programs compiled by the dry run's --compile_for (one
    XLA:TPU compile serves both), the other families by compile-tpu --hlo_dir; two processes
    at a time (one per core)."""
    workdir = tmp_path_factory.mktemp("dry") / "run"
    hlo_root = tmp_path_factory.mktemp("hlo")
    with ThreadPoolExecutor(2) as pool:
        dry = pool.submit(_dry_run_compiling_for_v5e_8, workdir)
        others = dict(zip(KINDS[1:], pool.map(lambda kind: _compile_kind(kind, hlo_root),
                                              KINDS[1:])))
        dry = dry.result()
    assert dry.returncode == 0, (dry.stdout + dry.stderr)[-4000:]
    saved = json.loads((workdir / "compile_v5e-8.json").read_text())
    return {"cyclegan": {r["program"]: r for r in saved}, **others}, dry, workdir, hlo_root


@pytest.fixture(scope="module")
def compiled(families) -> dict:
    return families[0]


@needs_libtpu
@pytest.mark.parametrize("kind", KINDS)
def test_every_family_compiles_for_a_v5e_8_and_fits(compiled, kind):
    reports = compiled[kind]
    assert set(reports) == PROGRAMS[kind]
    for program, report in reports.items():
        assert report["topology"] == "v5e-8" and report["hbm_bytes"] == 16 * 2**30
        assert report["fits"] and 0 < report["peak_bytes"] < report["hbm_bytes"], program
        assert report["flops"] > 0 and report["compile_seconds"] > 0, program
        assert report["items_per_chip"] == 2, program  # batch_size / submission / eval: 2
        # The per-chip peak is what the program needs plus what stays resident beside it.
        assert report["peak_bytes"] == (report["argument_bytes"] + report["temp_bytes"]
                                        + report["output_bytes"] - report["alias_bytes"]
                                        + report["code_bytes"] + report["resident_bytes"])
    step = reports["train_step"]
    # Keras' step donates its state: every output but the logs is written over an argument.
    assert 0 < step["alias_bytes"] <= step["argument_bytes"]
    assert step["output_bytes"] - step["alias_bytes"] < 0.01 * step["output_bytes"]
    # The training state stays on the chips while the submission translates.
    if "translate" in reports:
        assert reports["translate"]["resident_bytes"] == step["argument_bytes"]


@needs_libtpu
def test_flops_per_pair_follow_the_families_networks(compiled):
    """CUT trains one generator and one critic where CycleGAN trains two of each and runs the
    cycle (Park et al. 2020: about half the work); FastCUT drops CUT's identity pass; XLA's
    counts must say so. DCGAN's generator is a different network and is not compared."""
    per_pair = {kind: compiled[kind]["train_step"]["flops_per_item"] for kind in KINDS}
    assert per_pair["fastcut"] < per_pair["cut"] < 0.75 * per_pair["cyclegan"]
    # The submission translates at 256 px whatever the training size (a free-size copy of the
    # generator): per pixel, a training pair runs the generators forward and backward many
    # times over (six generator passes and their backward).
    translate = compiled["cyclegan"]["translate"]["flops_per_item"] * (32 / 256) ** 2
    assert per_pair["cyclegan"] > 6 * translate


@needs_libtpu
def test_the_saved_xla_tpu_program_counts_as_xla_does_and_sits_on_the_roofline(families):
    """compile-tpu --hlo_dir keeps the optimized program; monet_tf.training.hlo_costs counts
    its FLOPs as XLA:TPU's cost analysis does, and bench/profile_step.py --hlo places every op
    on the v5e's roofline."""
    from monet_tf.training import hlo_costs

    hlo = families[3] / "cut" / "train_step.hlo.txt"
    ops = hlo_costs.program_ops(hlo.read_text())
    xla = families[0]["cut"]["train_step"]["flops"]
    assert abs(sum(op.flops for op in ops) - xla) < 0.01 * xla
    categories = {op.category for op in ops}
    assert {"convolution forward", "convolution backward-data",
            "convolution backward-filter"} <= categories
    result = _cli("--hlo", str(hlo), "--topology=v5e-8", "--top=5",
                  script=(str(REPO / "bench" / "profile_step.py"),))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.splitlines()[-1][len("result "):])
    assert report["mode"] == "roofline" and report["peak_flops"] == 197e12
    assert report["bandwidth"] == 819e9 and len(report["top"]) == 5
    assert 0 < report["share_of_peak"] <= 1
    total = sum(row["ms"] for row in report["categories"].values())
    assert abs(total - report["roofline_ms"]) < 1e-6 * report["roofline_ms"]
    assert abs(report["flops"] - xla) < 0.01 * xla


def _sections(text: str, plant: str) -> tuple[list[str], int]:
    """tests/tpu_plant.py's output for one plant, and that plant's exit code."""
    lines = text.splitlines()
    start = lines.index(f"== {plant}")
    end = next(i for i in range(start, len(lines)) if lines[i].startswith(f"== {plant} exit "))
    return lines[start + 1:end], int(lines[end].rsplit(" ", 1)[1])


@pytest.fixture(scope="module")
def planted():
    """Every plant through the command, in one process (tests/tpu_plant.py)."""
    return _cli(f"--config={TINY}", "--topology=v5e-8", "--effort=fast", "--programs=train_step",
                script=(str(REPO / "tests" / "tpu_plant.py"), "float64,callback,dynamic_shape"))


@needs_libtpu
@pytest.mark.parametrize("plant,named", [
    ("float64", "float64 at"),
    ("callback", "a host callback (debug_print) at"),
    ("dynamic_shape", "a data-dependent shape or value at"),
])
def test_a_planted_tpu_hostile_construct_fails_naming_it(planted, plant, named):
    assert planted.returncode == 0, planted.stderr[-3000:]
    stderr, code = _sections(planted.stderr, plant)
    stdout, _ = _sections(planted.stdout, plant)
    assert code == 1, "\n".join(stdout + stderr[-20:])
    errors = [line for line in stderr if line.startswith("error:")]
    assert len(errors) == 1, stderr[-20:]
    line = (REPO / "tests" / "tpu_plant.py").read_text().splitlines()
    marked = next(i for i, text in enumerate(line, 1) if "# PLANTED" in text
                  and {"float64": "float64", "callback": "debug.print",
                       "dynamic_shape": "photo > 0"}[plant] in text)
    assert errors[0].startswith("error: train_step for v5e-8: " + named), errors[0]
    assert f"tpu_plant.py:{marked} (" in errors[0] and "planted)" in errors[0], errors[0]
    assert not any(text.startswith("train_step:") for text in stdout)  # Refused before compiling.


@needs_libtpu
def test_a_program_that_does_not_fit_exits_non_zero_naming_it():
    """Against a chip with 50 MiB of HBM to spare (--hbm_gib): XLA compiles the translator, which
    needs more, and the command refuses it (XLA:TPU's own out-of-memory errors take it far
    longer to reach on a CPU: it tries to rematerialise first)."""
    result = _cli(f"--config={TINY}", "--topology=v5e-8", "--hbm_gib=0.05", "--effort=fast",
                  "--programs=translate")
    assert result.returncode == 1, result.stdout + result.stderr[-2000:]
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert re.fullmatch(r"error: translate for v5e-8 does not fit: it needs [\d.]+ MiB per chip "
                        r"of 0\.05 GiB HBM; lower train\.batch_size \(or this program's batch\)",
                        error), error
    assert "translate: compiled in" in result.stdout  # The compile itself went through.


def test_topologies_by_the_names_users_know():
    assert {"v5e-8", "v5e-1", "v6e-1", "v6e-8", "v4-8", "v5p-8"} <= set(tpus.TOPOLOGIES)
    v5e = tpus.topology("v5e-8")
    assert (v5e.devices, v5e.hbm_gib, v5e.bf16_tflops) == (8, 16, 197)
    assert v5e.peak_flops == 8 * 197e12
    with pytest.raises(tpus.UnknownTopology, match="known: v5e-1, v5e-8, v6e-1"):
        tpus.topology("v5e-16")


@needs_libtpu
def test_libtpu_describes_every_topology_in_the_table():
    probe = ("from monet_tf.runtime import tpus\nfrom monet_tf.training import tpu_compile\n"
             "for t in tpus.TOPOLOGIES.values():\n"
             "    d = tpu_compile.topology_devices(t)\n"
             "    print(t.name, len(d), d[0].platform)\n")
    result = _cli("-c", probe, script=())
    assert result.returncode == 0, result.stderr[-2000:]
    seen = dict((name, (int(n), platform)) for name, n, platform in
                (line.split() for line in result.stdout.splitlines()))
    assert seen == {t.name: (t.devices, "tpu") for t in tpus.TOPOLOGIES.values()}


def test_bad_flags_get_one_line(tmp_path):
    unknown = _cli(f"--config={TINY}", "--topology=v9-8")
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines()[-1] == (
        "error: unknown TPU topology 'v9-8'; known: " + ", ".join(tpus.TOPOLOGIES))
    neither = _cli("--topology=v5e-8")
    assert neither.returncode == 2 and "give one of --config" in neither.stderr
    # Without libtpu: how to install it (a libtpu that fails to import stands in for none).
    blocked = tmp_path / "blocked" / "libtpu"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('libtpu blocked by the test')\n")
    import os

    env = {**os.environ, "PYTHONPATH": str(blocked.parent)}
    missing = _cli(f"--config={TINY}", "--topology=v5e-8", env=env)
    assert missing.returncode == 2, missing.stderr[-2000:]
    line = missing.stderr.strip().splitlines()[-1]
    assert line.startswith("error: compiling for a TPU needs libtpu") and "pip install 'jax[tpu]==" in line


@needs_libtpu
@pytest.mark.slow
def test_dry_run_compile_for_plans_from_xla(families):
    """run_train.py --dry_run --compile_for: the full config's programs through XLA:TPU first
    (their figures echoed and saved beside the run), then the dry run, then a plan whose pairs/s
    come from XLA's FLOPs."""
    compiled, result, workdir, _ = families
    out = result.stdout
    steps = re.search(r"^  train_step: compiled in ([\d.]+) s;.* ([\d.]+) GFLOP per pair$", out, re.M)
    assert steps, out[-3000:]
    assert out.index("  train_step: compiled in") < out.index("dry run: 3 steps on the sample")
    # The printed GFLOP have two decimals: the plan's rate lies between what their bounds give.
    printed = float(steps.group(2))
    assert printed == pytest.approx(compiled["cyclegan"]["train_step"]["flops_per_item"] / 1e9,
                                    abs=0.005)
    slowest, fastest = (0.3 * 8 * 197e12 / ((printed + d) * 1e9) for d in (0.005, -0.005))
    match = re.search(r"^  training at ([\d,]+) pairs/s: 30% of the v5e-8's 1,576 bf16 TFLOP/s "
                      r"over XLA:TPU's [\d.]+ TFLOP per pair \(compiled now\)", out, re.M)
    assert match, out[-3000:]
    assert slowest - 1 <= float(match.group(1).replace(",", "")) <= fastest + 1, match.group(0)
    assert re.search(r"^  compiling for v5e-8 \(XLA:TPU, timed on this machine's CPU\): "
                     r"train_step \dm\d\ds, translate \dm\d\ds, inception \dm\d\ds$", out,
                     re.M), out[-3000:]
    assert f"XLA:TPU's figures for v5e-8: {workdir / 'compile_v5e-8.json'}" in out
    # The dry run itself scores nothing (eval.every 0 in its config): no MiFID on the CPU.
    assert json.loads((workdir / "config.json").read_text())["eval"]["every"] == 0


@needs_libtpu
def test_without_scores_no_inception_program_is_compiled():
    result = _cli(f"--config={TINY}", "--config.eval.every=0", "--topology=v5e-8",
                  "--programs=inception")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == (
        "0 program(s) compile for v5e-8 and fit its 16 GiB per chip")


def test_compile_for_refuses_bad_flags_before_any_work(tmp_path):
    unknown = _cli("--compile_for=v7-8", "--dry_run", script=(str(REPO / "run_train.py"),))
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines()[-1].startswith(
        "error: --compile_for=v7-8: unknown TPU topology 'v7-8'; known: v5e-1")
    alone = _cli("--compile_for=v5e-8", script=(str(REPO / "run_train.py"),))
    assert alone.returncode == 2 and "--compile_for needs --dry_run" in alone.stderr
    assert "workdir:" not in unknown.stdout + alone.stdout


def test_steps_per_execution_calls_the_one_program_that_is_compiled():
    """What `train_step` compiles is all Keras' JAX trainer runs: with steps_per_execution=4 one
    train_function call runs 4 steps (every optimizer counts 4) through one compiled program
    (the jitted step's cache holds one executable), not a larger 4-step program."""
    probe = """
import numpy as np
from monet_tf.runtime.backend import select_backend
select_backend("jax", "cpu")
from monet_tf.models.families import build_model
from monet_tf.training.tpu_compile import jitted_train_step
from tests import tiny_config
cfg = tiny_config.get_config()
cfg.train.steps_per_execution = 4
model = build_model(cfg, steps_per_epoch=8, global_batch_size=2, jit_compile=True, replicas=1)
model.make_train_function()
rng = np.random.default_rng(0)
batches = [tuple(rng.uniform(-1, 1, (2, 32, 32, 3)).astype("float32") for _ in range(2))
           for _ in range(4)]
state = tuple([v.value for v in vs] for vs in (model.trainable_variables,
              model.non_trainable_variables, model.optimizer.variables, model.metrics_variables))
logs, state = model.train_function(state, iter(batches))
counts = [int(np.asarray(value)) for v, value in zip(model.optimizer.variables, state[2])
          if v.path.endswith("/iteration")]
print(jitted_train_step(model)._cache_size(), counts)
"""
    result = _cli("-c", probe, script=())
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[-2] == "1 [4, 4, 4, 4]", result.stdout
