r"""Image pairs/s of monet_tf's CycleGAN (or CUT / FastCUT) training step on Keras' JAX backend
(no TensorFlow needed).

    python bench/step_jax.py --image_size 256 --generator resnet_9blocks --ngf 64 --batch 8 \
        --precision mixed_bfloat16 --rounds 5              # on an accelerator machine
    python bench/step_jax.py --platform cpu --image_size 32 --ngf 8 --rounds 1 --steps 1
    python bench/step_jax.py --platform cpu --image_size 32 --ngf 8 --rounds 1 --steps 1 \
        --model fastcut                                    # FastCUT vs CycleGAN
    python bench/step_jax.py --serve ...                   # worker of bench/train_step.py

Imports neither TensorFlow nor monet_tf.runtime.devices: it runs where only JAX, Keras and this repo
are installed (e.g. a `pip install --target` folder on PYTHONPATH). The model is
`build_model(base_config() + --image_size/--generator/--ngf/--seed)` (model.kind cyclegan:
build_cyclegan) with jit on, exactly the networks bench/train_step.py's TensorFlow side builds
from the same seed (NumPy draws the initial weights on both backends). The step is driven as
Keras' JAX `fit` drives it, without tf.data: `model.make_train_function()`, the state lists
(trainable, non-trainable, optimizer, metric values) threaded through
`model.train_function(state, iterator)` call after call, on one fixed
random (photo, monet) batch held on the device(s).

Flags:
  --image_size N, --generator NAME, --ngf N   the network (default 128, resnet_6blocks, 32)
  --batch B          per device; the global batch is B x devices (default 1)
  --devices N        first N local devices of --platform; 0: all of them. N > 1 shards the batch
                     with keras.distribution.DataParallel (one SPMD program). On a CPU host
                     with --platform cpu, N > 1 asks XLA for N host devices.
  --platform P       cpu | gpu | tpu; default: JAX's default backend
  --precision P      auto | float32 | mixed_bfloat16. auto: as monet_tf.runtime.devices resolves it
                     on JAX: mixed_bfloat16 on TPU and on GPUs of compute capability >= 8,
                     float32 on other GPUs; on a CPU the faster of the two as
                     monet_tf.models.precision_probe measures it on XLA:CPU (cached; its line on
                     stderr, its record in the report's "precision_probe")
  --rounds R, --steps S, --block_seconds T   R timed blocks of S steps (S=0: sized to ~T s)
  --seed N           seed of the networks and the batch (default 0)
  --model KIND       cyclegan (default) | cut | fastcut: with cut or fastcut, CycleGAN and that
                     kind are built alike (model.kind the only difference: same generator,
                     critic, seed, batch, devices, policy) and timed in alternating rounds (the
                     order reverses every round); per model: median ms/step, pairs/s (global
                     batch / step time), first call, GFLOP/step, % of peak and parameters, and
                     the line "ratio KIND/cyclegan R in pairs/s". `result` then holds "sides"
                     ({kind: pairs_per_s, rates, ms_per_step, first_call_s, flops, loss,
                     params}) and "ratio"; its other fields are CycleGAN's.
  --set FIELD=VALUE  a config override of the step (repeatable), e.g. model.upsample=subpixel
  --against FIELD=VALUE   time a second step with these overrides as well, alternately as
                     with --model (labels "as-set" and the overrides): the before/after of an
                     option in one run, e.g. --against model.instance_norm=one_pass
  --serve            worker mode, below

Reported: first call (trace + XLA compile + one step, s), pairs/s per round and the median,
ms/step, GFLOP/step, GFLOP/s and % of peak. GFLOP/step is XLA's own count of the compiled step
(`jit(...).lower(...).compile().cost_analysis()["flops"]`, summed over devices: every op of the
optimized program, convolutions dominating; ~6 % above the conv-only count of bench/train_step.py's
TensorFlow side for its config (a)); on GPUs, whose cost analysis leaves out cuDNN's
convolutions, the same rule applied to the optimized program by monet_tf.training.hlo_costs. Peak: a large 3x3 SAME convolution
(N x 128 x 128 x 256 -> 256, N = 1 on CPU, 32 on an accelerator, in the step's compute dtype)
is timed on the first device in the same run; % of peak is of the nominal dense bf16/fp16 peak
for known accelerators (H100/H200 SXM 989 TFLOP/s, H100 PCIe 756, A100 312, L4 121, T4 65 fp16,
TPU v5e 197, v3 123 per chip = 61.5 per core/device), else of that measured convolution, in
either case x devices.

--serve: prints one JSON line on stdout when ready ({"ready": true, "first_call_s", "flops",
"conv_peak_flops", "nominal_peak_flops", "device_kind", "devices", "policy", "loss", ...}), then
reads commands from stdin: "run N" runs N steps, waits for them (jax.block_until_ready) and
prints {"steps": N, "seconds": S, "loss": L}; "quit" (or end of input) exits. With --model
cut|fastcut the ready line also has "sides" ({kind: first_call_s, flops, loss, params}) and
"run N KIND" runs that model ("run N": CycleGAN). Everything else the process prints goes to
stderr.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import statistics
import sys
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(_REPO, "monet_tf")) and _REPO not in sys.path:
    sys.path.append(_REPO)  # Run from a checkout; an installed monet_tf comes first.

from monet_tf.training import hlo_costs  # noqa: E402  (no TensorFlow)
from monet_tf.training.tpu_compile import jitted_train_step, xla_flops  # noqa: E402

# Nominal dense peak per JAX device: (regex on device_kind, lower case; FLOP/s; what it is).
NOMINAL_PEAKS = (
    (r"\bh100 pcie", 756e12, "H100 PCIe bf16 dense"),
    (r"\bh[12]00\b", 989e12, "H100/H200 SXM bf16 dense"),
    (r"\ba100\b", 312e12, "A100 bf16 dense"),
    (r"\bl4\b", 121e12, "L4 bf16 dense"),
    (r"\bt4\b", 65e12, "T4 fp16 dense"),
    (r"\btpu v5 ?(lite|e)\b|v5litepod", 197e12, "TPU v5e bf16 per chip"),
    (r"\btpu v3\b", 123e12 / 2, "TPU v3 bf16, 123 per chip / 2 cores"),
)
PRECISIONS = ("auto", "float32", "mixed_bfloat16")
MODELS = ("cyclegan", "cut", "fastcut")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image_size", type=int, default=128)
    p.add_argument("--generator", default="resnet_6blocks")
    p.add_argument("--ngf", type=int, default=32)
    p.add_argument("--batch", type=int, default=1, help="per device")
    p.add_argument("--devices", type=int, default=1, help="first N local devices; 0: all")
    p.add_argument("--platform", default="", help="cpu | gpu | tpu; default JAX's default")
    p.add_argument("--precision", default="auto", choices=PRECISIONS)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=0, help="per timed block; 0: ~--block_seconds")
    p.add_argument("--block_seconds", type=float, default=6.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="cyclegan", choices=MODELS,
                   help="cut / fastcut: time that kind against CycleGAN (same networks)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="config override (repeatable), e.g. model.instance_norm=one_pass")
    p.add_argument("--against", action="append", default=[], metavar="FIELD=VALUE",
                   help="time a second step with these overrides too, alternately (repeatable)")
    p.add_argument("--serve", action="store_true", help="worker mode (JSON on stdin/stdout)")
    p.add_argument("--verbosity", type=int, default=-1, help="0: XLA's native INFO lines too")
    args = p.parse_args(argv)
    if args.batch < 1 or args.devices < 0 or args.rounds < 1 or args.steps < 0:
        p.error("--batch and --rounds must be >= 1, --devices and --steps >= 0")
    if args.against and args.model != "cyclegan":
        p.error("--against compares one family with itself; leave --model out")
    from monet_tf.config import apply_overrides, base_config

    try:
        apply_overrides(base_config(), args.set + args.against)
    except ValueError as err:
        p.error(f"--set/--against {err}")
    return args


def nominal_peak(device_kind: str):
    """(FLOP/s per device, description) for a known accelerator, else (None, None)."""
    kind = device_kind.lower()
    for pattern, flops, what in NOMINAL_PEAKS:
        if re.search(pattern, kind):
            return flops, what
    return None, None


def resolve_precision(args, device) -> tuple[str, dict | None]:
    """(--precision as monet_tf.runtime.devices.Runtime.precision resolves it on JAX, without
    importing it: it imports TensorFlow; on a CPU `auto` runs the probe of
    monet_tf.models.precision_probe, whose line goes to stderr and whose record comes back)."""
    if args.precision != "auto":
        return args.precision, None
    if device.platform in ("tpu", "gpu"):
        from monet_tf.runtime.precision import auto_precision

        try:
            capability = float(getattr(device, "compute_capability", 0.0))
        except (TypeError, ValueError):
            capability = 0.0
        return auto_precision(device.platform, capability, loss_scaling=False), None
    from monet_tf.models.precision_probe import ProbeShape, cpu_precision, probe_size

    probe = cpu_precision("jax", ProbeShape(args.ngf, probe_size(args.image_size)))
    print(probe.describe(), file=sys.stderr, flush=True)
    return probe.choice, probe.as_config()


def conv_peak(device, dtype: str) -> tuple[float, str]:
    """Median FLOP/s of a 3x3 SAME N x 128 x 128 x 256 -> 256 convolution on `device`."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    n, calls, repeats = (1, 3, 3) if device.platform == "cpu" else (32, 10, 5)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, 128, 128, 256), np.float32)
    w = 0.02 * rng.standard_normal((3, 3, 256, 256), np.float32)
    x, w = (jax.device_put(jnp.asarray(a, dtype), device) for a in (x, w))
    conv = jax.jit(lambda x, w: jax.lax.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")))
    jax.block_until_ready(conv(x, w))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            y = conv(x, w)
        jax.block_until_ready(y)
        times.append((time.perf_counter() - start) / calls)
    flops = 2 * n * 128 * 128 * 256 * 256 * 9
    return flops / statistics.median(times), f"{n}x128x128x256->256 3x3 {dtype}"


def _flops(compiled, devices: int, platform: str) -> float | None:
    """XLA's count of the whole step: one SPMD partition's x devices. XLA:GPU's cost analysis
    leaves out the convolutions it hands to cuDNN (custom calls), so on GPUs the count is
    monet_tf.training.hlo_costs' over the optimized program (XLA's own rule, cuDNN included;
    equal to XLA's count on CPU and TPU)."""
    flops = (sum(op.flops for op in hlo_costs.program_ops(compiled.as_text()))
             if platform == "gpu" else xla_flops(compiled))
    return None if flops is None else flops * devices


class Bench:
    """The model, its state and the batch; `run(steps)` -> seconds (blocked until done).

    kind: the family (cfg.model.kind, built with build_model). like: another Bench whose
    devices, policy, distribution, batch and measured conv peak this one shares (to time two
    families on the same footing in one process)."""

    def __init__(self, args, kind: str = "cyclegan", like: "Bench | None" = None,
                 overrides=()):
        import jax
        import keras
        import numpy as np

        from monet_tf import config as config_lib
        from monet_tf.models.families import build_model

        self.kind = kind
        if like is None:
            devices = jax.devices(args.platform) if args.platform else jax.devices()
            if args.devices > len(devices):
                raise SystemExit(f"--devices={args.devices} but JAX sees {len(devices)} "
                                 f"{devices[0].platform} device(s)")
            devices = devices[: args.devices or len(devices)]
            self.devices = devices
            self.device_kind = devices[0].device_kind
            self.platform = devices[0].platform
            self.policy, self.precision_probe = resolve_precision(args, devices[0])
            self.global_batch = args.batch * len(devices)
            compute_dtype = "bfloat16" if self.policy == "mixed_bfloat16" else "float32"
            self.conv_peak, self.conv_what = conv_peak(devices[0], compute_dtype)
            self.nominal_peak, self.nominal_what = nominal_peak(self.device_kind)

            self.distribution = None
            if len(devices) > 1:
                self.distribution = keras.distribution.DataParallel(devices=devices)
                keras.distribution.set_distribution(self.distribution)
            # The same batch as bench/train_step.py's TensorFlow side draws from the seed.
            rng = np.random.default_rng(args.seed)
            shape = (self.global_batch, args.image_size, args.image_size, 3)
            batch = tuple(rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(2))
            if self.distribution is not None:
                layout = self.distribution.get_data_layout(shape).backend_layout
                batch = tuple(jax.device_put(x, layout) for x in batch)
            else:
                # Uncommitted, like the state and like fit's batches: committing only the batch
                # would change the step's argument shardings after the first call (its outputs
                # are committed then) and make JAX compile the step a second time.
                batch = tuple(jax.device_put(x) for x in batch)
            self.batch = batch
        else:
            for name in ("devices", "device_kind", "platform", "policy", "precision_probe",
                         "global_batch", "conv_peak", "conv_what", "nominal_peak",
                         "nominal_what", "distribution", "batch"):
                setattr(self, name, getattr(like, name))
        devices, batch = self.devices, self.batch

        cfg = config_lib.base_config()
        cfg.model.kind = kind
        cfg.data.image_size = args.image_size
        cfg.model.generator = args.generator
        cfg.model.ngf = args.ngf
        blocks = re.fullmatch(r"resnet_([0-9]+)blocks", args.generator)
        if blocks and int(blocks.group(1)) < 5:  # PatchNCE's deepest layer, in a shallower ResNet.
            cfg.loss.nce_layers = cfg.loss.nce_layers.replace("block_5", f"block_{blocks.group(1)}")
        cfg.seed = args.seed
        config_lib.apply_overrides(cfg, overrides)
        self.ndf = cfg.model.ndf
        keras.utils.set_random_seed(cfg.seed)
        keras.config.set_dtype_policy(self.policy)
        model = build_model(cfg, steps_per_epoch=1000, global_batch_size=self.global_batch,
                            jit_compile=True)
        model.make_train_function()
        self.model = model
        self.params = {name: int(getattr(model, name).count_params()) for name in model.NETWORKS}

        self.data = itertools.repeat(batch)  # What train_function takes: an iterator of batches.
        self.state = (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in model.optimizer.variables],
            [v.value for v in model.metrics_variables],
        )

        # First call: trace + lower + compile (here, ahead of time, to read XLA's FLOP count;
        # the call below then reuses the executable) + one step.
        start = time.perf_counter()
        jitted = jitted_train_step(model)
        compiled = None
        if jitted is not None:
            compiled = jitted.lower(self.state, batch).compile()
        self.loss = self.run_steps(1)
        self.first_call_s = time.perf_counter() - start
        if compiled is None:
            compiled = jax.jit(model.train_step).lower(self.state, batch).compile()
        self.flops = _flops(compiled, len(devices), self.platform)
        self.hlo_text = compiled.as_text()  # The optimized step, for bench/profile_step.py.

    def run_steps(self, steps: int) -> float:
        import jax

        logs, state = None, self.state
        for _ in range(steps):
            logs, state = self.model.train_function(state, self.data)
        jax.block_until_ready((logs, state))
        self.state = state
        return float(logs["gen_total_loss"])

    def timed(self, steps: int) -> tuple[float, float]:
        start = time.perf_counter()
        loss = self.run_steps(steps)
        return time.perf_counter() - start, loss

    def peak(self) -> tuple[float, str]:
        """FLOP/s that % of peak is of: the nominal peak x devices, else the measured conv."""
        if self.nominal_peak:
            return self.nominal_peak * len(self.devices), f"nominal {self.nominal_what}"
        n = len(self.devices)
        return self.conv_peak * n, f"measured conv {self.conv_what}" + (f" x {n}" if n > 1 else "")

    def describe(self) -> dict:
        import jax
        import keras

        return {"device_kind": self.device_kind, "platform": self.platform,
                "devices": len(self.devices), "policy": self.policy,
                "precision_probe": self.precision_probe,
                "global_batch": self.global_batch, "ndf": self.ndf, "model": self.kind,
                "first_call_s": self.first_call_s, "flops": self.flops, "loss": self.loss,
                "params": self.params,
                "conv_peak_flops": self.conv_peak, "conv_peak_what": self.conv_what,
                "nominal_peak_flops": self.nominal_peak, "nominal_peak_what": self.nominal_what,
                "jax": jax.__version__, "keras": keras.__version__}


def build_benches(args) -> dict:
    """{label: Bench}: CycleGAN, and with --model=cut|fastcut that kind beside it, or with
    --against the same family with those overrides (built alike, sharing the devices, batch
    and peak). The first is the one the others are compared with."""
    if args.against:
        base = Bench(args, overrides=args.set)
        return {"as-set": base,
                ",".join(args.against): Bench(args, like=base, overrides=args.set + args.against)}
    benches = {"cyclegan": Bench(args, "cyclegan", overrides=args.set)}
    if args.model != "cyclegan":
        benches[args.model] = Bench(args, args.model, like=benches["cyclegan"], overrides=args.set)
    return benches


def side_info(bench) -> dict:
    return {"first_call_s": bench.first_call_s, "flops": bench.flops, "loss": bench.loss,
            "params": bench.params}


def serve(args, out) -> None:
    """With --model=cut|fastcut (or --against) the ready line also has "sides" ({label:
    first_call_s, flops, loss, params}) and "run N LABEL" runs that one ("run N": the first)."""
    benches = build_benches(args)
    base = next(iter(benches))
    ready = {"ready": True, **benches[base].describe()}
    if len(benches) > 1:
        ready["sides"] = {label: side_info(bench) for label, bench in benches.items()}
    out.write(json.dumps(ready) + "\n")
    out.flush()
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        if (words[0] == "run" and len(words) in (2, 3) and words[1].isdigit()
                and (len(words) == 2 or words[2] in benches)):
            bench = benches[words[2] if len(words) == 3 else base]
            seconds, loss = bench.timed(int(words[1]))
            reply = {"steps": int(words[1]), "seconds": seconds, "loss": loss}
        else:
            reply = {"error": f"unknown command {line.strip()!r}: use 'run N', 'run N KIND' "
                              f"(KIND one of {', '.join(benches)}) or 'quit'"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


def compare_models(args) -> None:
    """--model=cut|fastcut: CycleGAN and that kind; --against: the step as set and with those
    overrides; timed alternately in this process (the order reverses every round)."""
    benches = build_benches(args)
    base, other = list(benches)
    first = benches[base]
    d = first.describe()
    print(f"JAX {d['jax']}, Keras {d['keras']}: {d['devices']} x {d['device_kind']} "
          f"({d['platform']}); policy {d['policy']}; {args.image_size} px, {args.generator}, "
          f"ngf {args.ngf}, ndf {d['ndf']}, batch {args.batch}/device = {d['global_batch']}"
          + (f"; {', '.join(args.set)}" if args.set else "") + f": {other} vs {base}")
    for label, bench in benches.items():
        print(f"{label}: first call (trace + compile + 1 step) {bench.first_call_s:.1f} s, "
              f"gen_total_loss {bench.loss:.4f}", flush=True)
    probe = {label: bench.timed(1)[0] for label, bench in benches.items()}
    steps = args.steps or max(1, round(args.block_seconds / max(probe.values())))
    print(f"{args.rounds} rounds x {steps} steps per model", flush=True)
    rates = {label: [] for label in benches}
    for r in range(args.rounds):
        for label in (list(benches) if r % 2 == 0 else list(benches)[::-1]):
            seconds, _ = benches[label].timed(steps)
            rates[label].append(first.global_batch * steps / seconds)
        print(f"  round {r + 1}: " + ", ".join(f"{label} {rates[label][-1]:.3f}"
                                               for label in benches) + " pairs/s", flush=True)
    rate = {label: statistics.median(r) for label, r in rates.items()}
    peak, peak_what = first.peak()
    width = max(9, *map(len, benches))
    print(f"{'':{width}} {'ms/step':>9} {'pairs/s':>8} {'first s':>8} {'GFLOP/step':>10} "
          f"{'GFLOP/s':>8} {'% peak':>6} {'params':>11} {'vs ' + base:>11}")
    sides = {}
    for label, bench in benches.items():
        step_s = first.global_batch / rate[label]
        gflops = (bench.flops or float("nan")) / 1e9
        print(f"{label:{width}} {step_s * 1e3:9.1f} {rate[label]:8.3f} {bench.first_call_s:8.1f} "
              f"{gflops:10.1f} {gflops / step_s:8.1f} {100 * gflops / step_s / (peak / 1e9):6.1f} "
              f"{sum(bench.params.values()):11,d} {rate[label] / rate[base]:11.2f}")
        sides[label] = {**side_info(bench), "pairs_per_s": rate[label], "rates": rates[label],
                        "ms_per_step": step_s * 1e3}
    for label, bench in benches.items():
        print(f"{label} params: " + " + ".join(f"{net} {n:,d}" for net, n in bench.params.items()))
    print(f"ms/step: median over the rounds; pairs/s: global batch {first.global_batch} / "
          f"ms/step; GFLOP/step: XLA cost analysis of the compiled step (all devices); % peak of "
          f"{peak / 1e9:.0f} GFLOP/s ({peak_what})")
    ratio = rate[other] / rate[base]
    flops = {label: bench.flops or float("nan") for label, bench in benches.items()}
    print(f"ratio {other}/{base} {ratio:.2f} in pairs/s (GFLOP/step {base}/"
          f"{other} {flops[base] / flops[other]:.2f})")
    print("result " + json.dumps({**d, "model": args.model, "against": args.against,
                                  "sides": sides, "ratio": ratio, "steps": steps,
                                  "peak_flops": peak}))


def standalone(args) -> None:
    if args.model != "cyclegan" or args.against:
        compare_models(args)
        return
    bench = Bench(args, overrides=args.set)
    d = bench.describe()
    print(f"JAX {d['jax']}, Keras {d['keras']}: {d['devices']} x {d['device_kind']} "
          f"({d['platform']}); policy {d['policy']}; {args.image_size} px, {args.generator}, "
          f"ngf {args.ngf}, ndf {d['ndf']}, batch {args.batch}/device = {d['global_batch']}")
    nominal = (f"; nominal {bench.nominal_peak / 1e9:.0f} GFLOP/s/device ({bench.nominal_what})"
               if bench.nominal_peak else "; no nominal peak known for this device kind")
    print(f"conv peak ({bench.conv_what}, jax.jit, device 0): {bench.conv_peak / 1e9:.0f} "
          f"GFLOP/s{nominal}")
    print(f"first call (trace + compile + 1 step): {bench.first_call_s:.1f} s, "
          f"gen_total_loss {bench.loss:.4f}", flush=True)
    probe, _ = bench.timed(1)
    steps = args.steps or max(1, round(args.block_seconds / probe))
    print(f"{args.rounds} rounds x {steps} steps", flush=True)
    rates = []
    for r in range(args.rounds):
        seconds, loss = bench.timed(steps)
        rates.append(bench.global_batch * steps / seconds)
        print(f"  round {r + 1}: {rates[-1]:.3f} pairs/s ({1e3 * seconds / steps:.1f} ms/step)",
              flush=True)
    rate = statistics.median(rates)
    step_s = bench.global_batch / rate
    peak, peak_what = bench.peak()
    gflops = (bench.flops or float("nan")) / 1e9
    print(f"{'':6} {'pairs/s':>9} {'ms/step':>9} {'first s':>8} {'GFLOP/step':>10} "
          f"{'GFLOP/s':>9} {'% peak':>6}")
    print(f"{'jax':6} {rate:9.3f} {step_s * 1e3:9.1f} {bench.first_call_s:8.1f} {gflops:10.1f} "
          f"{gflops / step_s:9.1f} {100 * gflops / step_s / (peak / 1e9):6.1f}")
    measured = (f"; the measured conv is {100 * bench.conv_peak / bench.nominal_peak:.0f} % of "
                f"the nominal peak" if bench.nominal_peak else "")
    print(f"GFLOP/step: XLA cost analysis of the compiled step (all devices); % peak of "
          f"{peak / 1e9:.0f} GFLOP/s ({peak_what}){measured}")
    print("result " + json.dumps({**d, "pairs_per_s": rate, "rates": rates, "steps": steps,
                                  "ms_per_step": step_s * 1e3, "peak_flops": peak}))


def main(argv=None) -> None:
    args = parse_args(argv)
    # Imports nothing heavy; sets KERAS_BACKEND.
    from monet_tf.runtime.backend import select_backend
    from monet_tf.runtime.console import quiet

    quiet(args.verbosity >= 0, args.verbosity)  # Before JAX loads.

    out = sys.stdout
    if args.serve:
        sys.stdout = sys.stderr  # Stray prints must not corrupt the JSON channel.
    select_backend("jax", "cpu" if args.platform == "cpu" else args.platform or "default",
                   cpu_replicas=max(1, args.devices))
    if args.serve:
        serve(args, out)
    else:
        standalone(args)


if __name__ == "__main__":
    main()
