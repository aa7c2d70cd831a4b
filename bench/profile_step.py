r"""Where the JAX training step spends its time: device time by category and the costliest ops.

    python bench/profile_step.py --platform cpu --image_size 64 --ngf 16 --steps 3
    python bench/profile_step.py --image_size 256 --generator resnet_9blocks --ngf 64 --batch 8 \
        --precision mixed_bfloat16                        # on a GPU
    python bench/profile_step.py --tpu configs/kaggle_tpu.py --topology v5e-8   # no TPU needed
    python bench/profile_step.py --tpu configs/kaggle_tpu.py --against model.instance_norm=one_pass
    python bench/profile_step.py --hlo train_step.hlo.txt --topology v5e-8     # a saved program

Measured (CPU, GPU): bench/step_jax.py's flags build the same step (same networks, seed, batch,
devices, policy; `--set model.instance_norm=one_pass` and the like change the config), which
runs once, then --steps steps under `jax.profiler.trace`. Every op the profiler saw run (events
carrying an `hlo_op` of the step's module) is matched to the optimized program's op of that
name (monet_tf.training.hlo_costs: its FLOPs, bytes and category) and its time summed:
convolution forward, backward-data, backward-filter; norm reductions; pads, copies and
transposes; other fusions. "idle and host" is the step's wall time less the time some op ran
(the union of their intervals): launch gaps, host work, waiting. Then the --top costliest ops,
with their FLOP/s and bytes/s.

Estimated (TPU): the config's train_step compiled by XLA:TPU for --topology (`monet-tf
compile-tpu --hlo_dir`, no TPU needed; with --against FIELD=VALUE the same config with those
overrides too, the two compared side by side, XLA's memory figures beside), or a saved program
(--hlo), and each op placed on the chip's roofline (bf16 peak, HBM bandwidth:
monet_tf/runtime/tpus.py): max(FLOPs / peak, bytes / bandwidth). Their sum is the step's time at
the roofline, one op after another, and FLOPs over it the share of peak the program can reach;
the second figure hides the transfers XLA scheduled asynchronously (copy-start, slice-start: its
memory-space assignment's prefetches) under compute. Each op at its roofline and no idle time:
the chip approaches these from below.

With --against FIELD=VALUE (CPU, GPU) the step is profiled as set, then with those overrides, in
one process, and the two compared by category. The last line is `result {...}` (JSON) with every
figure printed.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

_BENCH = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(_BENCH)
if os.path.isdir(os.path.join(_REPO, "monet_tf")) and _REPO not in sys.path:
    sys.path.append(_REPO)  # Run from a checkout; an installed monet_tf comes first.
sys.path.insert(0, _BENCH)

import step_jax  # noqa: E402

from monet_tf.training import hlo_costs  # noqa: E402


def parse_args(argv=None):
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--steps", type=int, default=3, help="profiled steps (after one untimed)")
    own.add_argument("--top", type=int, default=15, help="costliest ops listed")
    own.add_argument("--trace_dir", default="", help="keep the trace here (TensorBoard/xprof)")
    own.add_argument("--tpu", default="", help="a config file: its XLA:TPU train_step's roofline")
    own.add_argument("--hlo", default="", help="an optimized program (*.hlo.txt): its roofline")
    own.add_argument("--topology", default="v5e-8", help="the TPU whose roofline (--tpu, --hlo)")
    args, rest = own.parse_known_args(argv)
    step = step_jax.parse_args(rest + ["--steps", "1"])
    for name, value in vars(args).items():
        setattr(step, name, value)
    return step


def _table(rows: dict, total: float, unit: str = "ms") -> None:
    print(f"{'category':30} {'ops':>5} {unit + '/step':>10} {'share':>6} {'GFLOP':>9} "
          f"{'MB':>9}")
    for name, row in rows.items():
        print(f"{name:30} {row['ops']:5d} {row['seconds'] * 1e3:10.3f} "
              f"{100 * row['seconds'] / total if total else 0:5.1f}% "
              f"{row['flops'] / 1e9:9.3f} {row['bytes'] / 1e6:9.1f}")


# --- measured: the profiler's events on the program's ops -------------------------------


def _module_name(hlo_text: str) -> str:
    first = hlo_text.split("\n", 1)[0]
    return first.split()[1].rstrip(",") if first.startswith("HloModule") else ""


def op_events(xplane_path: str, module: str) -> tuple[list[tuple[str, float, float]], str]:
    """([(hlo op name, start ns, duration ns)] of the module's ops, the plane they ran on).

    Device planes (/device:GPU:0, ...) when the trace has any, else the host's (XLA:CPU runs
    its ops on host threads)."""
    from jax.profiler import ProfileData

    profile = ProfileData.from_file(xplane_path)
    planes = [p for p in profile.planes if p.name.startswith("/device:")
              and not p.name.startswith("/device:CUSTOM")]
    planes = planes or [p for p in profile.planes if p.name == "/host:CPU"]
    events, where = [], ",".join(p.name for p in planes)
    for plane in planes:
        lines = list(plane.lines)
        derived = [line for line in lines if line.name == "XLA Ops"]
        for line in derived or lines:
            for event in line.events:
                stats = dict(event.stats)
                if "hlo_op" not in stats or stats.get("hlo_module", module) != module:
                    continue
                events.append((str(stats["hlo_op"]), float(event.start_ns),
                               float(event.duration_ns)))
    return events, where


def busy_ns(events) -> float:
    """Length of the union of the events' intervals (ops that overlap count once)."""
    total, end = 0.0, float("-inf")
    for _, start, duration in sorted(events, key=lambda e: e[1]):
        stop = start + duration
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def measure(args) -> dict:
    import jax

    bench = step_jax.Bench(args, overrides=args.set)
    ops = {op.name: op for op in hlo_costs.program_ops(bench.hlo_text)}
    module = _module_name(bench.hlo_text)
    bench.run_steps(1)
    trace_dir = args.trace_dir or tempfile.mkdtemp(prefix="monet_tf_profile_")
    with open(os.path.join(trace_dir, "train_step.hlo.txt"), "w") as f:
        f.write(bench.hlo_text)  # What the ops were matched to (and --hlo reads).
    with jax.profiler.trace(trace_dir):
        wall = []
        for _ in range(args.steps):
            start = time.perf_counter()
            bench.run_steps(1)
            wall.append(time.perf_counter() - start)
    paths = sorted(glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True),
                   key=os.path.getmtime)
    if not paths:
        raise SystemExit(f"error: jax.profiler wrote no *.xplane.pb under {trace_dir}")
    events, where = op_events(paths[-1], module)
    steps = args.steps
    rows = {c: {"ops": 0, "seconds": 0.0, "flops": 0.0, "bytes": 0.0}
            for c in hlo_costs.CATEGORIES + ("not in the program",)}
    per_op = collections.defaultdict(float)
    for name, _, duration in events:
        per_op[name] += duration / 1e9 / steps
    for name, seconds in per_op.items():
        op = ops.get(name)
        row = rows[op.category if op else "not in the program"]
        row["ops"] += 1
        row["seconds"] += seconds
        row["flops"] += op.flops if op else 0.0
        row["bytes"] += op.bytes if op else 0.0
    step_s = statistics.median(wall)
    busy = busy_ns(events) / 1e9 / steps
    idle = max(0.0, step_s - busy)
    d = bench.describe()
    print(f"JAX {d['jax']}, Keras {d['keras']}: {d['devices']} x {d['device_kind']} "
          f"({d['platform']}); policy {d['policy']}; {args.image_size} px, {args.generator}, "
          f"ngf {args.ngf}, batch {d['global_batch']}" + (f"; {', '.join(args.set)}"
                                                          if args.set else ""))
    print(f"{steps} profiled steps on {where}: median wall {step_s * 1e3:.1f} ms/step; "
          f"ops ran {sum(per_op.values()) * 1e3:.1f} ms/step summed over threads/streams, "
          f"some op running {busy * 1e3:.1f} ms of it; {len(per_op)} distinct ops, "
          f"{len(ops)} in the program")
    _table(rows, sum(per_op.values()))
    print(f"{'idle and host':30} {'':5} {idle * 1e3:10.3f} {100 * idle / step_s:5.1f}% of the "
          "wall time (no op running)")
    print(f"the {args.top} costliest ops (ms/step, GFLOP/s, GB/s):")
    top = sorted(per_op.items(), key=lambda kv: -kv[1])[: args.top]
    listed = []
    for name, seconds in top:
        op = ops.get(name)
        flops, moved = (op.flops, op.bytes) if op else (0.0, 0.0)
        category = op.category if op else "not in the program"
        print(f"  {seconds * 1e3:9.3f}  {flops / seconds / 1e9 if seconds else 0:9.1f} "
              f"{moved / seconds / 1e9 if seconds else 0:8.1f}  {category:28} {name}  "
              f"{(op.op_name if op else '')[-70:]}")
        listed.append({"name": name, "ms": seconds * 1e3, "category": category, "flops": flops,
                       "bytes": moved, "op_name": op.op_name if op else ""})
    program_flops = sum(op.flops for op in ops.values())
    print(f"GFLOP/step: {program_flops / 1e9:.2f} by the program's ops (hlo_costs), "
          f"{(bench.flops or float('nan')) / 1e9:.2f} as bench/step_jax.py reports it")
    return {**d, "mode": "measured", "steps": steps, "wall_ms": step_s * 1e3,
            "busy_ms": busy * 1e3, "idle_ms": idle * 1e3, "overrides": args.set,
            "categories": {k: {**v, "ms": v["seconds"] * 1e3} for k, v in rows.items()},
            "top": listed, "program_ops": len(ops), "program_flops": program_flops}


# --- estimated: the roofline of an XLA:TPU program --------------------------------------


def compile_for_tpu(config: str, topology: str, overrides) -> tuple[str, dict]:
    """The config's train_step compiled by XLA:TPU (in a subprocess: compile-tpu): its
    optimized program as text, and compile-tpu's report (memory, FLOPs, compile time)."""
    out = tempfile.mkdtemp(prefix="monet_tf_tpu_hlo_")
    command = [sys.executable, "-m", "monet_tf", "compile-tpu", f"--config={config}",
               f"--topology={topology}", "--programs=train_step", f"--hlo_dir={out}", "--json"]
    command += [f"--config.{item}" for item in overrides]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr.strip().splitlines()[-1] if done.stderr.strip()
                         else f"error: compile-tpu exited {done.returncode}")
    report = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    with open(os.path.join(out, "train_step.hlo.txt")) as f:
        return f.read(), report


def roofline_section(text: str, what: str, topology, top: int) -> dict:
    """Prints one program's roofline (categories, costliest ops); returns its figures."""
    peak, bandwidth = topology.bf16_tflops * 1e12, topology.hbm_gbps * 1e9
    roofline = hlo_costs.Roofline(peak, bandwidth, hlo_costs.program_ops(text))
    rows = roofline.by_category()
    memory_bound = [op for op in roofline.ops if op.bound(peak, bandwidth) == "memory"]
    print(f"{what} for {topology.name}, per chip, on its roofline ({peak / 1e12:g} TFLOP/s "
          f"bf16, {bandwidth / 1e9:g} GB/s HBM): {len(roofline.ops)} ops, "
          f"{roofline.flops / 1e9:.1f} GFLOP, {roofline.seconds * 1e3:.2f} ms at the roofline "
          f"-> {100 * roofline.share_of_peak:.1f}% of peak")
    _table(rows, roofline.seconds)
    print(f"memory-bound ops: {len(memory_bound)} of {len(roofline.ops)}, "
          f"{sum(op.seconds(peak, bandwidth) for op in memory_bound) * 1e3:.2f} ms of the time")
    transfers = sum(op.asynchronous for op in roofline.ops)
    print(f"with its {transfers} asynchronous transfers (copy-start, slice-start, memory-space "
          f"custom calls) hidden under compute: {roofline.seconds_overlapped * 1e3:.2f} ms "
          f"-> {100 * roofline.share_of_peak_overlapped:.1f}% of peak")
    print(f"the {top} costliest ops at the roofline (ms, GFLOP, MB, bound):")
    listed = []
    for op in roofline.costliest(top):
        seconds = op.seconds(peak, bandwidth)
        print(f"  {seconds * 1e3:8.3f} {op.flops / 1e9:9.2f} {op.bytes / 1e6:9.1f} "
              f"{op.bound(peak, bandwidth):7}  {op.category:28} {op.name}  {op.op_name[-60:]}")
        listed.append({"name": op.name, "ms": seconds * 1e3, "category": op.category,
                       "flops": op.flops, "bytes": op.bytes, "bound": op.bound(peak, bandwidth)})
    return {"program": what, "flops": roofline.flops, "bytes": sum(op.bytes for op in roofline.ops),
            "ops": len(roofline.ops), "roofline_ms": roofline.seconds * 1e3,
            "share_of_peak": roofline.share_of_peak,
            "overlapped_ms": roofline.seconds_overlapped * 1e3,
            "share_of_peak_overlapped": roofline.share_of_peak_overlapped,
            "categories": {k: {**v, "ms": v["seconds"] * 1e3} for k, v in rows.items()},
            "top": listed}


def estimate(args) -> dict:
    """--hlo: that program's roofline. --tpu: the config's train_step compiled for the TPU, and
    with --against the same config with those overrides, compared side by side."""
    from monet_tf.runtime import tpus

    topology = tpus.topology(args.topology)
    result = {"mode": "roofline", "topology": topology.name,
              "peak_flops": topology.bf16_tflops * 1e12, "bandwidth": topology.hbm_gbps * 1e9}
    if args.hlo:
        with open(args.hlo) as f:
            return {**result, **roofline_section(f.read(), args.hlo, topology, args.top)}
    sides = {"as-set": args.set}
    if args.against:
        sides[",".join(args.against)] = args.set + args.against
    figures = {}
    for label, overrides in sides.items():
        text, report = compile_for_tpu(args.tpu, args.topology, overrides)
        what = f"{args.tpu} train_step" + (f" ({', '.join(overrides)})" if overrides else "")
        figures[label] = {**roofline_section(text, what, topology, args.top),
                          "xla": {k: report[k] for k in ("flops", "peak_bytes", "temp_bytes",
                                                         "compile_seconds", "items_per_chip")}}
        print()
    if len(figures) > 1:
        width = max(map(len, figures))
        print(f"{'':{width}} {'roofline ms':>11} {'% peak':>6} {'overlapped':>10} {'% peak':>6} "
              f"{'GFLOP':>8} {'GB moved':>9} {'ops':>5} {'peak HBM GiB':>12} {'temp GiB':>8}")
        for label, f in figures.items():
            print(f"{label:{width}} {f['roofline_ms']:11.2f} {100 * f['share_of_peak']:6.1f} "
                  f"{f['overlapped_ms']:10.2f} {100 * f['share_of_peak_overlapped']:6.1f} "
                  f"{f['flops'] / 1e9:8.1f} {f['bytes'] / 1e9:9.2f} {f['ops']:5d} "
                  f"{f['xla']['peak_bytes'] / 2**30:12.2f} {f['xla']['temp_bytes'] / 2**30:8.2f}")
    base = figures["as-set"]
    return {**result, **base, "sides": figures}


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.tpu or args.hlo:
        result = estimate(args)
    else:
        from monet_tf.runtime.backend import select_backend
        from monet_tf.runtime.console import quiet

        quiet(args.verbosity >= 0, args.verbosity)
        select_backend("jax", "cpu" if args.platform == "cpu" else args.platform or "default",
                       cpu_replicas=max(1, args.devices))
        result = measure(args)
        if args.against:  # The same step with the overrides, profiled after it in this process.
            base_set = args.set
            args.set = base_set + args.against
            print()
            other = measure(args)
            args.set = base_set
            compare_measured({"as-set": result, ",".join(args.against): other})
            result = {**result, "sides": {"as-set": result, ",".join(args.against): other}}
    print("result " + json.dumps(result))


def compare_measured(sides: dict) -> None:
    """Wall time and each category's time of two profiled steps, side by side."""
    width = max(30, *map(len, sides))
    labels = list(sides)
    print(f"{'ms/step':30} " + " ".join(f"{label[:width]:>{width}}" for label in labels))
    print(f"{'wall':30} " + " ".join(f"{sides[label]['wall_ms']:{width}.1f}" for label in labels))
    for category in list(hlo_costs.CATEGORIES) + ["not in the program"]:
        print(f"{category:30} " + " ".join(
            f"{sides[label]['categories'][category]['ms']:{width}.1f}" for label in labels))
    print(f"{'idle and host':30} " + " ".join(f"{sides[label]['idle_ms']:{width}.1f}"
                                                for label in labels))


if __name__ == "__main__":
    main()
