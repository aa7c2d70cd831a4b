"""bench/train_step.py --model=fastcut times CycleGAN and FastCUT built alike and prints both
rows, their parameter counts and the FastCUT/CycleGAN ratio (a smoke test: no timings are
checked). Tiny: 32 px, resnet_6blocks, ngf 8, one round of one step (~1 min on 2 cores)."""

import os
import pathlib
import re
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "train_step.py"
NUMBER = r"(\d+(?:\.\d+)?|nan)"


def test_train_step_bench_compares_fastcut_with_cyclegan():
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env.update(PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, str(BENCH), "--model=fastcut", "--quick", "--image_size=32",
         "--generator=resnet_6blocks", "--ngf=8", "--rounds=1", "--steps=1",
         "--precision=float32"],
        capture_output=True, text=True, timeout=240, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr[-4000:]
    out = result.stdout
    assert "model fastcut vs cyclegan" in out, out
    assert "round 1: cyclegan " in out and "fastcut " in out, out

    # One row per model: ms/step, pairs/s, first s, GFLOP/step, GFLOP/s, params, vs cyclegan.
    rows = {}
    for kind in ("cyclegan", "fastcut"):
        match = re.search(rf"^\s+{kind}\s+" + r"\s+".join([NUMBER] * 5) + r"\s+([\d,]+)\s+"
                          + NUMBER + r"\s*$", out, re.M)
        assert match, (kind, out)
        ms, rate, first, gflops, _, params, vs = match.groups()
        rows[kind] = {"ms": float(ms), "rate": float(rate), "first": float(first),
                      "gflops": float(gflops), "params": int(params.replace(",", "")),
                      "vs": float(vs)}
        assert rows[kind]["ms"] > 0 and rows[kind]["rate"] > 0 and rows[kind]["gflops"] > 0
    assert rows["cyclegan"]["vs"] == 1.0
    # pairs/s = global batch (1) / median step time.
    for row in rows.values():
        assert abs(row["rate"] * row["ms"] / 1e3 - 1) < 0.01, rows

    # Parameter counts per network: the same generator and critic on both sides.
    nets = {}
    for kind in ("cyclegan", "fastcut"):
        match = re.search(rf"^\s+{kind} params: (.+)$", out, re.M)
        assert match, (kind, out)
        nets[kind] = {name: int(n.replace(",", "")) for name, n in
                      (part.strip().rsplit(" ", 1) for part in match.group(1).split(" + "))}
        assert sum(nets[kind].values()) == rows[kind]["params"]
    assert set(nets["cyclegan"]) == {"photo_to_monet", "monet_to_photo", "monet_critic",
                                     "photo_critic"}
    assert set(nets["fastcut"]) == {"photo_to_monet", "monet_critic", "nce_heads"}
    for name in ("photo_to_monet", "monet_critic"):
        assert nets["fastcut"][name] == nets["cyclegan"][name]

    match = re.search(r"config \(a\) ratio fastcut/cyclegan " + NUMBER + " in pairs/s", out)
    assert match, out
    ratio = float(match.group(1))
    assert ratio > 0 and abs(ratio - rows["fastcut"]["vs"]) < 0.011
    assert out.rstrip().splitlines()[-1] == f"ratio {ratio:.2f}", out
