r"""Image pairs/s of the CycleGAN training step: monet_tf's against a plain keras.io-style step,
or (--backend=jax) monet_tf's step on Keras' JAX backend against the same step on TensorFlow.

    python bench/train_step.py               # (a) 128 px ngf 32 resnet_6blocks, (b) 256 px ngf 64 resnet_9blocks
    python bench/train_step.py --quick       # (a) only
    python bench/train_step.py --rounds=3 --steps=2
    python bench/train_step.py --backend=jax --quick --rounds=2     # JAX step vs TensorFlow step
    python bench/train_step.py --backend=jax --quick --image_size=64 --steps=1 --rounds=2
    python bench/train_step.py --model=fastcut --configs=b --rounds=3 --steps=2   # vs CycleGAN
    python bench/train_step.py --model=cut --backend=jax --quick --image_size=64  # on JAX

Flags beside --quick, --rounds, --steps, --block_seconds and --seed:
  --configs=a,b             the configs to run (default: both, or (a) with --quick).
  --model=cyclegan|cut|fastcut   cyclegan (default): the comparisons below. cut / fastcut: that
                            family against CycleGAN, see "--model" at the end.
  --backend=tensorflow|jax  tensorflow (default): the sides below. jax: two sides, "tensorflow"
                            (ours, as below) and "jax" (bench/step_jax.py), see "--backend=jax".
  --batch=B                 batch per device (one device here), default 1.
  --precision=auto|float32|mixed_bfloat16   the policy judged (default auto: as training
                            resolves train.mixed_precision on this machine, per config and
                            backend: on a CPU the probe of monet_tf.models.precision_probe, run
                            afresh (a temporary cache) and its line printed; mixed_bfloat16 on TPU
                            and GPUs of compute capability >= 8). It is the policy of "ours" beside
                            plain and of the JAX and --model comparisons; on JAX the worker
                            probes XLA:CPU itself, so the two sides may differ on a CPU host
                            (pass float32 to compare like with like).
  --image_size=N, --generator=NAME, --ngf=N   override these fields of every config run (e.g.
                            --quick --image_size=64 for a short check).

Every side trains the same architecture on the same fixed random (photo, monet) batch (of --batch
pairs) held in memory, on this machine's CPU:

- ours float32, ours bfloat16: `build_model(base_config() + overrides)` (model.kind cyclegan:
  build_cyclegan) exactly as monet_tf.training.job builds it on this machine under each policy
  `auto` chooses from on a CPU: default strategy, train.jit_compile "auto" (no XLA on a CPU-only
  host), pool 50, lsgan, identity 0.5, cycle 10, no DiffAugment, steps_per_execution 1; driven as
  `model.fit` drives it: its `train_function` called on an iterator of a repeated in-memory
  tf.data dataset. The row of the policy --precision resolves to is marked "(auto)".
- ours f32 XLA: the float32 step with jit_compile=true, to show what XLA:CPU does to it.
- plain: the keras.io / TensorFlow-tutorial CycleGAN step in float32: fresh generators and critics
  from the project's own builders (identical layers), one `tf.function` (no XLA) with a persistent
  GradientTape, six generator and four critic calls, lsgan MSE, cycle L1 x 10 and identity L1 x 5
  (the same objective as ours: each generator's loss holds both cycle terms), four
  `tape.gradient` calls and four keras Adam(2e-4, beta_1=0.5) `apply_gradients`. No image pool.

The first call of each (trace + compile + one step) is timed and reported on its own; one more
untimed step per side sizes the timing blocks (--steps, else ~--block_seconds per block). Each round
runs every side once, in an order that reverses every round; per-round rates and medians are
printed.

FLOPs per step are counted on each side's traced step graph (not estimated): every Conv2D,
Conv2DBackpropInput and Conv2DBackpropFilter reachable from the step's outputs and side effects,
2 x (output elements) x (kernel h x w x input channels); normalisations, activations, losses and
Adam are left out (< 1 %). As a sanity check the usual analytic estimate, 3 x forward conv FLOPs
of the six generator and four critic passes, is printed beside it (~1.9 TFLOP for config (b)).
The convolution peak is measured in the same run: a float32 1x128x128x256 -> 256 3x3 Conv2D under
tf.function(jit_compile=True), median GFLOP/s (the same conv without XLA is printed too).

Per config two ratio lines follow the table: ours (the chosen policy)/plain, and the chosen
policy's pairs/s over the faster of the two explicit precisions' (1.00 when auto chose the
faster; below 1 it names a wrong choice). The last lines repeat both over the configs, and the
last is `ratio X.XX`: the smallest chosen/best-explicit ratio (target >= 0.95 on any machine).

--backend=jax: Keras picks one backend per process, so the JAX step runs in a worker process,
`bench/step_jax.py --serve` (no TensorFlow there), started per config with the same config, seed,
--batch and --precision: the same initial weights (NumPy draws them from the seed on both
backends) and the same batch. It builds `build_cyclegan(..., jit_compile=True)` and drives
`model.train_function(state, iterator)` as Keras' JAX fit does, then answers "run N" with the
seconds N steps took (jax.block_until_ready). The sides are timed alternately, as above; the
first-step gen_total_loss of both is printed (equal within float32 rounding when the policies
match). Per side: pairs/s, ms/step, first call (trace + compile + 1 step, s), GFLOP/step
(tensorflow: the conv count above; jax: XLA's cost analysis of the compiled step, all ops),
GFLOP/s and % of peak: the nominal dense peak of a known accelerator, else the fastest of the
measured convs (TensorFlow's above, and in bfloat16 without XLA when ours runs mixed_bfloat16;
the worker's JAX conv in its step's compute dtype). The last line is `ratio X.XX`: the smallest
jax/tensorflow pairs/s ratio over the configs.

--model=cut|fastcut: two sides per config, "cyclegan" and the chosen kind, both
`build_model(base_config() + overrides)` with model.kind set and nothing else changed: the same
--image_size, --generator, --ngf, critic, --batch, --precision, jit ("auto") and seed, so the
generator and the critic are the same networks with the same initial weights (CUT adds its
PatchNCE heads, nce_heads). Each is driven as "ours" above (fit's train_function), on the same
fixed batch; first calls are reported, then one untimed step each sizes the blocks and the
rounds alternate as above. Printed per model: median ms/step, pairs/s (global batch / median
step time), first call, GFLOP/step (the Conv2D + backprop ops of its traced step graph plus its
MatMul / Einsum ops: CUT's projection heads and PatchNCE similarities), GFLOP/s, parameters (in
total, and per network below) and pairs/s relative to CycleGAN; then "config (X) ratio
KIND/cyclegan R in pairs/s" beside the inverse GFLOP/step ratio. With --backend=jax both models
run on Keras' JAX backend in one bench/step_jax.py --model=KIND worker (GFLOP/step: XLA's cost
analysis), TensorFlow timing nothing. The last line is `ratio X.XX`: the smallest KIND/cyclegan
pairs/s ratio over the configs (the issue expects >= 1.6 for FastCUT at 256 px).

--against=FIELD=VALUE (repeatable): the same two-sided run, the sides being the CycleGAN step "as
set" and the same step with these config overrides (e.g. model.instance_norm=one_pass,
model.reflect_padding=gather, model.upsample=subpixel): an option's before and after, side by
side in one run, on TensorFlow or (--backend=jax) in one bench/step_jax.py --against worker.
    python bench/train_step.py --quick --against=model.instance_norm=one_pass
    python bench/train_step.py --quick --backend=jax --against=model.instance_norm=one_pass
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from monet_tf.runtime import commandline  # noqa: E402

commandline.prepare(backend=None)  # The quiet console, before TensorFlow loads.

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import flags  # noqa: E402

from monet_tf import config as config_lib  # noqa: E402
from monet_tf.models.critics import build_critic  # noqa: E402
from monet_tf.models.families import build_model  # noqa: E402
from monet_tf.models.generators import build_generator  # noqa: E402
from monet_tf.models.precision_probe import (PRECISION_CACHE_ENV, ProbeShape,  # noqa: E402
                                             cpu_model, cpu_precision, probe_size)
from monet_tf.runtime.devices import from_tf_strategy  # noqa: E402
from monet_tf.runtime.tf_strategy import use_xla  # noqa: E402

CONFIGS = {  # name: (image_size, generator, ngf)
    "a": (128, "resnet_6blocks", 32),
    "b": (256, "resnet_9blocks", 64),
}
BATCH = 1  # --batch, set in main()
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(REPO, "bench", "step_jax.py")
CONV_OPS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")
MATMUL_OPS = ("MatMul", "BatchMatMulV2", "Einsum")

flags.DEFINE_bool("quick", False, "Run config (a) only.")
flags.DEFINE_list("configs", [], "Configs to run, e.g. b (empty: a and b, or a with --quick).")
flags.DEFINE_enum("model", "cyclegan", ["cyclegan", "cut", "fastcut"],
                  "cyclegan: the comparisons above; cut / fastcut: that kind against CycleGAN on "
                  "the same generator and critic, same run (see --model).")
flags.DEFINE_integer("rounds", 5, "Timed rounds (each one block of every side).")
flags.DEFINE_integer("steps", 0, "Steps per timing block; 0: sized to --block_seconds.")
flags.DEFINE_float("block_seconds", 6.0, "Target length of a timing block when --steps=0.")
flags.DEFINE_integer("seed", 0, "Seed of the batch and the networks.")
flags.DEFINE_enum("backend", "tensorflow", ["tensorflow", "jax"],
                  "tensorflow: ours vs plain; jax: the JAX step (a worker process) vs ours on TF.")
flags.DEFINE_integer("batch", 1, "Batch per device.", lower_bound=1)
flags.DEFINE_enum("precision", "auto", ["auto", "float32", "mixed_bfloat16"],
                  "Dtype policy of ours (and of the JAX step); auto as training resolves it.")
flags.DEFINE_integer("image_size", 0, "Override every config's image size (0: keep).")
flags.DEFINE_string("generator", "", "Override every config's generator (empty: keep).")
flags.DEFINE_integer("ngf", 0, "Override every config's ngf (0: keep).")
flags.DEFINE_multi_string("against", [], "FIELD=VALUE (repeatable): time the CycleGAN step as it "
                          "is against the same step with these overrides, alternately, on the "
                          "chosen backend (e.g. model.instance_norm=one_pass).")
FLAGS = flags.FLAGS


# ----------------------------------------------------------------------------------- FLOP counts
def reachable_ops(graph) -> list:
    """The ops reachable from `graph`'s outputs and control outputs (what a step runs)."""
    seen, stack, ops = set(), [t.op for t in graph.outputs] + list(graph.control_outputs), []
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        ops.append(op)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return ops


def conv_flops(graph) -> tuple[int, list[str]]:
    """2 x MACs of the convolutions reachable from `graph`'s outputs and control outputs."""
    total, nested = 0, []
    for op in reachable_ops(graph):
        if op.type in ("PartitionedCall", "StatefulPartitionedCall"):
            nested.append(op.name)  # Not expected (Keras 3 inlines layers); reported if seen.
        if op.type not in CONV_OPS:
            continue
        if op.type == "Conv2D":
            out, kernel = op.outputs[0].shape, op.inputs[1].shape
        elif op.type == "Conv2DBackpropInput":  # (input_sizes, filter, out_backprop)
            out, kernel = op.inputs[2].shape, op.inputs[1].shape
        else:  # Conv2DBackpropFilter: (input, filter_sizes, out_backprop) -> filter
            out, kernel = op.inputs[2].shape, op.outputs[0].shape
        total += 2 * out.num_elements() * kernel[0] * kernel[1] * kernel[2]
    return total, nested


def matmul_flops(graph) -> int:
    """2 x MACs of the matrix products reachable from `graph`'s outputs (CUT's projection heads
    and PatchNCE similarities: MatMul, BatchMatMulV2, Einsum)."""
    total = 0
    for op in reachable_ops(graph):
        if op.type not in MATMUL_OPS:
            continue
        out = op.outputs[0].shape
        if op.type == "MatMul":
            a = op.inputs[0].shape
            total += 2 * out.num_elements() * a[0 if op.get_attr("transpose_a") else 1]
        elif op.type == "BatchMatMulV2":
            x = op.inputs[0].shape
            total += 2 * out.num_elements() * x[-2 if op.get_attr("adj_x") else -1]
        else:  # Einsum "abc,adc->abd": 2 x the product of every distinct label's size.
            equation = op.get_attr("equation").decode()
            sizes = {}
            for labels, tensor in zip(equation.split("->")[0].split(","), op.inputs):
                if "." in labels:
                    break  # Ellipses: not used by the models; left uncounted.
                sizes.update(zip(labels, tensor.shape.as_list()))
            else:
                total += 2 * int(np.prod(list(sizes.values()), dtype=np.int64))
    return total


def forward_flops(network, size: int) -> int:
    fn = tf.function(lambda x: network(x, training=True))
    graph = fn.get_concrete_function(tf.TensorSpec((BATCH, size, size, 3), tf.float32)).graph
    return conv_flops(graph)[0]


# -------------------------------------------------------------------------------------- conv peak
def conv_rate(jit: bool, dtype=tf.float32, calls: int = 5, repeats: int = 5) -> float:
    """Median GFLOP/s of a 1x128x128x256 -> 256, 3x3 SAME Conv2D."""
    x = tf.cast(tf.random.stateless_normal([1, 128, 128, 256], [1, 2]), dtype)
    w = tf.cast(0.02 * tf.random.stateless_normal([3, 3, 256, 256], [3, 4]), dtype)
    fn = tf.function(lambda x, w: tf.nn.conv2d(x, w, 1, "SAME"), jit_compile=jit)
    fn(x, w).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            y = fn(x, w)
        y.numpy()
        times.append((time.perf_counter() - start) / calls)
    return 2 * 128 * 128 * 256 * 256 * 9 / statistics.median(times) / 1e9


# ----------------------------------------------------------------------------------------- steps
def project_config(size: int, generator: str, ngf: int):
    cfg = config_lib.base_config()
    cfg.data.image_size = size
    cfg.model.generator = generator
    cfg.model.ngf = ngf
    cfg.seed = FLAGS.seed
    return cfg


def build_ours(cfg, photo, monet, policy: str, jit_compile: str = "auto"):
    """The project's step as monet_tf.training.job runs it: fit's train_function on a dataset
    iterator.

    cfg.model.kind picks the family (build_model)."""
    keras.utils.set_random_seed(cfg.seed)
    cfg.train.jit_compile = jit_compile
    keras.config.set_dtype_policy(policy)  # What Runtime.precision does before building.
    try:
        model = build_model(cfg, steps_per_epoch=1000, global_batch_size=BATCH)
    finally:
        keras.config.set_dtype_policy("float32")
    model.make_train_function()
    iterator = iter(tf.data.Dataset.from_tensors((photo, monet)).repeat())

    def run(steps: int) -> float:
        for _ in range(steps):
            logs = model.train_function(iterator)
        return float(logs["gen_total_loss"])

    # Same step, traced once more without running it, only to count its convolutions.
    graph = tf.function(model.train_step).get_concrete_function((photo, monet)).graph
    return model, run, graph


def build_plain(cfg, photo, monet):
    """keras.io-style CycleGAN step on fresh networks from the project's builders (same layers)."""
    m, size, seed = cfg.model, cfg.data.image_size, cfg.seed + 100

    def generator(name, offset):
        return build_generator(m.generator, ngf=m.ngf, upsample=m.upsample, dropout=m.dropout,
                               norm_epsilon=m.norm_epsilon, image_size=size, model_name=name,
                               seed=seed * 4 + offset)

    def critic(name, offset):
        return build_critic(m.critic, ndf=m.ndf, n_layers=m.critic_layers, noise=m.critic_noise,
                            spectral_norm=m.spectral_norm, norm_epsilon=m.norm_epsilon,
                            image_size=size, model_name=name, seed=seed * 4 + offset)

    gen_g, gen_f = generator("gen_G", 0), generator("gen_F", 1)  # G: photo (x) -> monet (y)
    disc_x, disc_y = critic("disc_X", 2), critic("disc_Y", 3)
    nets = [gen_g, gen_f, disc_x, disc_y]
    opts = [keras.optimizers.Adam(2e-4, beta_1=0.5) for _ in nets]
    for opt, net in zip(opts, nets):
        opt.build(net.trainable_variables)
    adv = keras.losses.MeanSquaredError()
    l1 = keras.losses.MeanAbsoluteError()
    lam_cycle, lam_id = cfg.loss.cycle_weight, cfg.loss.identity_weight

    @tf.function
    def train_step(real_x, real_y):
        with tf.GradientTape(persistent=True) as tape:
            fake_y = gen_g(real_x, training=True)
            cycled_x = gen_f(fake_y, training=True)
            fake_x = gen_f(real_y, training=True)
            cycled_y = gen_g(fake_x, training=True)
            same_x = gen_f(real_x, training=True)
            same_y = gen_g(real_y, training=True)
            disc_real_x = disc_x(real_x, training=True)
            disc_fake_x = disc_x(fake_x, training=True)
            disc_real_y = disc_y(real_y, training=True)
            disc_fake_y = disc_y(fake_y, training=True)

            gen_g_loss = adv(tf.ones_like(disc_fake_y), disc_fake_y)
            gen_f_loss = adv(tf.ones_like(disc_fake_x), disc_fake_x)
            cycle_loss = (l1(real_x, cycled_x) + l1(real_y, cycled_y)) * lam_cycle
            id_g = l1(real_y, same_y) * lam_cycle * lam_id
            id_f = l1(real_x, same_x) * lam_cycle * lam_id
            total_g = gen_g_loss + cycle_loss + id_g
            total_f = gen_f_loss + cycle_loss + id_f
            disc_x_loss = 0.5 * (adv(tf.ones_like(disc_real_x), disc_real_x)
                                 + adv(tf.zeros_like(disc_fake_x), disc_fake_x))
            disc_y_loss = 0.5 * (adv(tf.ones_like(disc_real_y), disc_real_y)
                                 + adv(tf.zeros_like(disc_fake_y), disc_fake_y))
        for loss, net, opt in zip((total_g, total_f, disc_x_loss, disc_y_loss), nets, opts):
            grads = tape.gradient(loss, net.trainable_variables)
            opt.apply_gradients(zip(grads, net.trainable_variables))
        del tape
        return {"G_loss": total_g, "F_loss": total_f, "D_X_loss": disc_x_loss,
                "D_Y_loss": disc_y_loss}

    def run(steps: int) -> float:
        for _ in range(steps):
            logs = train_step(photo, monet)
        return float(logs["G_loss"])

    graph = train_step.get_concrete_function(photo, monet).graph
    return (gen_g, disc_x), run, graph


def timed(run, steps: int) -> float:
    start = time.perf_counter()
    run(steps)
    return time.perf_counter() - start


def param_counts(model) -> dict:
    """Parameters per network of a family (its NETWORKS, e.g. CUT's nce_heads too)."""
    return {name: int(getattr(model, name).count_params()) for name in model.NETWORKS}


def config_shape(name: str) -> tuple[int, str, int]:
    """CONFIGS[name] with the --image_size / --generator / --ngf overrides."""
    size, generator, ngf = CONFIGS[name]
    return (FLAGS.image_size or size, FLAGS.generator or generator, FLAGS.ngf or ngf)


def fixed_batch(size: int):
    """The (photo, monet) batch every side trains on (the JAX worker draws the same one)."""
    rng = np.random.default_rng(FLAGS.seed)
    return tuple(tf.constant(rng.uniform(-1, 1, (BATCH, size, size, 3)).astype(np.float32))
                 for _ in range(2))


def bench_config(name: str, peak: float, policy: str) -> tuple[float, float]:
    """Ours in float32 and in bfloat16 (the two policies `auto` chooses from on a CPU), ours
    with XLA, and plain, timed alternately. Returns (the chosen policy's side / the faster of
    the two explicit sides, ours (chosen policy)/plain) in pairs/s."""
    size, generator, ngf = config_shape(name)
    cfg = project_config(size, generator, ngf)
    photo, monet = fixed_batch(size)
    print(f"\n== config ({name}): {size} px, {generator}, ngf {ngf}, ndf {cfg.model.ndf}, "
          f"batch {BATCH}", flush=True)
    explicit = {"float32": "ours float32", "mixed_bfloat16": "ours bfloat16"}
    explicit.setdefault(policy, f"ours {policy}")  # mixed_float16: auto on a 7.x GPU.
    builds = {side: build_ours(cfg, photo, monet, p) for p, side in explicit.items()}
    builds["ours f32 XLA"] = build_ours(cfg, photo, monet, "float32", jit_compile="true")
    builds["plain"] = build_plain(cfg, photo, monet)
    sides = {side: run for side, (_, run, _) in builds.items()}
    chosen = explicit[policy]

    flops = {}
    for side, (_, _, graph) in builds.items():
        flops[side], nested = conv_flops(graph)
        if nested:
            print(f"  warning: {side} graph has {len(nested)} nested function calls (not counted)")
    gen, crit = builds["plain"][0]
    fwd_g, fwd_d = forward_flops(gen, size), forward_flops(crit, size)
    analytic = 3 * (6 * fwd_g + 4 * fwd_d)

    first = {}
    for side, run in sides.items():
        first[side] = timed(run, 1)
        print(f"  {side}: first call (trace + compile + 1 step) {first[side]:.1f} s", flush=True)
    probe = {side: timed(run, 1) for side, run in sides.items()}
    steps = FLAGS.steps or max(1, round(FLAGS.block_seconds / max(probe.values())))
    print(f"  {FLAGS.rounds} rounds x {steps} steps per side", flush=True)

    times = {side: [] for side in sides}
    for r in range(FLAGS.rounds):
        for side in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
            times[side].append(timed(sides[side], steps))
        print(f"  round {r + 1}: " + ", ".join(f"{side} {steps / times[side][-1]:.3f}"
                                               for side in sides) + " pairs/s", flush=True)

    print(f"  {'':20} {'pairs/s':>8} {'ms/step':>8} {'compile s':>9} {'GFLOP/step':>10} "
          f"{'GFLOP/s':>8} {'% peak':>6} {'vs plain':>8}")
    rate = {side: BATCH * steps / statistics.median(times[side]) for side in sides}
    for side in sides:
        step_s = BATCH / rate[side]
        gflops = flops[side] / 1e9
        label = f"{side} (auto)" if side == chosen and FLAGS.precision == "auto" else side
        print(f"  {label:20} {rate[side]:8.3f} {step_s * 1e3:8.0f} {first[side] - step_s:9.1f} "
              f"{gflops:10.1f} {gflops / step_s:8.1f} {100 * gflops / step_s / peak:6.1f} "
              f"{rate[side] / rate['plain']:8.2f}")
    print(f"  FLOPs/step counted on the traced step graphs (Conv2D + backprop ops); analytic "
          f"3 x fwd (6 generator + 4 critic passes, fwd G {fwd_g / 1e9:.1f} + D "
          f"{fwd_d / 1e9:.2f} GFLOP): {analytic / 1e12:.3f} TFLOP")
    ours = rate[chosen] / rate["plain"]
    print(f"  config ({name}) ratio ours ({FLAGS.precision}: {policy}, no XLA)/plain {ours:.2f}")
    best = max(explicit, key=lambda p: rate[explicit[p]])
    choice = rate[chosen] / rate[explicit[best]]
    print(f"  config ({name}) ratio {FLAGS.precision} ({policy})/best explicit ({best}) "
          f"{choice:.2f}", flush=True)
    return choice, ours


# ------------------------------------------------------------------------------ --backend=jax
class JaxWorker:
    """bench/step_jax.py --serve in its own process (Keras' JAX backend, no TensorFlow)."""

    def __init__(self, size: int, generator: str, ngf: int, platform: str,
                 model: str = "cyclegan", against=()):
        cmd = [sys.executable, WORKER, "--serve", "--image_size", str(size), "--generator",
               generator, "--ngf", str(ngf), "--batch", str(BATCH), "--precision",
               FLAGS.precision, "--seed", str(FLAGS.seed), "--devices", "1"]
        if platform:
            cmd += ["--platform", platform]
        if model != "cyclegan":  # The worker builds CycleGAN and this kind (info["sides"]).
            cmd += ["--model", model]
        for item in against:  # ... or the step as it is and with these (info["sides"]).
            cmd += ["--against", item]
        env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # Share a GPU with TensorFlow.
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, bufsize=1, env=env)
        self.info = self._reply()
        if not self.info.get("ready"):
            raise RuntimeError(f"JAX worker: unexpected first line {self.info}")

    def _reply(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.log.seek(0)
            raise RuntimeError(f"JAX worker exited (rc {self.proc.wait()}):\n"
                               + self.log.read()[-6000:])
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"JAX worker: {reply['error']}")
        return reply

    def run(self, steps: int, side: str = "") -> float:
        """Seconds that `steps` steps took, measured in the worker (until block_until_ready);
        side: which of the worker's models (with --model=cut|fastcut), empty: its first."""
        self.proc.stdin.write(f"run {steps} {side}".rstrip() + "\n")
        self.proc.stdin.flush()
        return self._reply()["seconds"]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def bench_config_jax(name: str, tf_peaks: dict, policy: str) -> float:
    """The JAX step (worker process) against ours on TensorFlow: same config, seed and batch.

    tf_peaks: GFLOP/s of the convs measured in this process, by description."""
    size, generator, ngf = config_shape(name)
    cfg = project_config(size, generator, ngf)
    photo, monet = fixed_batch(size)
    print(f"\n== config ({name}): {size} px, {generator}, ngf {ngf}, ndf {cfg.model.ndf}, "
          f"batch {BATCH}", flush=True)
    # The worker builds, compiles and runs its first step while this process waits, and the
    # other way round below: the two never compete for the cores.
    platform = "" if tf.config.list_physical_devices("GPU") else "cpu"
    worker = JaxWorker(size, generator, ngf, platform)
    try:
        info = worker.info
        probe = info.get("precision_probe")
        print(f"  jax worker: JAX {info['jax']}, {info['devices']} x {info['device_kind']}, "
              f"policy {info['policy']}"
              + (f" (auto's probe on XLA:CPU: float32 {probe['float32_ms']:.1f} ms, bfloat16 "
                 f"{probe['bfloat16_ms']:.1f} ms)" if probe else "")
              + f"; conv {info['conv_peak_what']}: {info['conv_peak_flops'] / 1e9:.0f} GFLOP/s",
              flush=True)
        model, tf_run, graph = build_ours(cfg, photo, monet, policy)
        tf_flops, nested = conv_flops(graph)
        if nested:
            print(f"  warning: the tensorflow graph has {len(nested)} nested function calls "
                  "(not counted)")
        start = time.perf_counter()
        tf_loss = tf_run(1)
        first = {"tensorflow": time.perf_counter() - start, "jax": info["first_call_s"]}
        flops = {"tensorflow": tf_flops, "jax": info["flops"] or float("nan")}
        policies = {"tensorflow": policy, "jax": info["policy"]}
        sides = {"tensorflow": lambda steps: timed(tf_run, steps), "jax": worker.run}
        for side in sides:
            print(f"  {side}: first call (trace + compile + 1 step) {first[side]:.1f} s",
                  flush=True)
        print(f"  first-step gen_total_loss: tensorflow {tf_loss:.5f}, jax {info['loss']:.5f}"
              + ("" if policy == info["policy"] else " (different policies)"), flush=True)

        probe = {side: run(1) for side, run in sides.items()}
        steps = FLAGS.steps or max(1, round(FLAGS.block_seconds / max(probe.values())))
        print(f"  {FLAGS.rounds} rounds x {steps} steps per side", flush=True)
        times = {side: [] for side in sides}
        for r in range(FLAGS.rounds):
            for side in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
                times[side].append(sides[side](steps))
            print(f"  round {r + 1}: " + ", ".join(f"{side} {BATCH * steps / times[side][-1]:.3f}"
                                                   for side in sides) + " pairs/s", flush=True)
    finally:
        worker.close()

    if info.get("nominal_peak_flops"):
        peak = info["nominal_peak_flops"] * info["devices"]
        peak_what = f"nominal {info['nominal_peak_what']}"
    else:  # The fastest conv measured on either side (FLOP/s).
        measured = {f"TensorFlow {what}": gflops * 1e9 for what, gflops in tf_peaks.items()}
        measured[f"JAX {info['conv_peak_what']}"] = info["conv_peak_flops"]
        peak_what = max(measured, key=measured.get)
        peak = measured[peak_what]
        peak_what = f"measured: the fastest conv, {peak_what}"
    print(f"  {'':10} {'policy':>14} {'pairs/s':>8} {'ms/step':>8} {'first s':>8} "
          f"{'GFLOP/step':>10} {'GFLOP/s':>8} {'% peak':>6} {'vs tf':>6}")
    rate = {side: BATCH * steps / statistics.median(times[side]) for side in sides}
    for side in sides:
        step_s = BATCH / rate[side]
        gflops = flops[side] / 1e9
        print(f"  {side:10} {policies[side]:>14} {rate[side]:8.3f} {step_s * 1e3:8.0f} "
              f"{first[side]:8.1f} {gflops:10.1f} {gflops / step_s:8.1f} "
              f"{100 * gflops / step_s / (peak / 1e9):6.1f} "
              f"{rate[side] / rate['tensorflow']:6.2f}")
    print(f"  GFLOP/step: tensorflow the Conv2D + backprop ops of its traced step graph, jax "
          f"XLA's cost analysis of its compiled step (all ops); % peak of {peak / 1e9:.0f} "
          f"GFLOP/s ({peak_what})")
    ratio = rate["jax"] / rate["tensorflow"]
    print(f"  config ({name}) ratio jax ({info['policy']})/tensorflow ({policy}, no XLA) "
          f"{ratio:.2f}", flush=True)
    return ratio


# ------------------------------------------------------------------ --model=cut|fastcut
def time_rounds(sides: dict) -> tuple[int, dict]:
    """One untimed step per side (sizes the blocks), then --rounds rounds of one block per side
    in an order that reverses every round. sides: name -> run(steps) -> seconds."""
    probe = {side: run(1) for side, run in sides.items()}
    steps = FLAGS.steps or max(1, round(FLAGS.block_seconds / max(probe.values())))
    print(f"  {FLAGS.rounds} rounds x {steps} steps per side", flush=True)
    times = {side: [] for side in sides}
    for r in range(FLAGS.rounds):
        for side in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
            times[side].append(sides[side](steps))
        print(f"  round {r + 1}: " + ", ".join(f"{side} {BATCH * steps / times[side][-1]:.3f}"
                                               for side in sides) + " pairs/s", flush=True)
    return steps, times


def report_models(name: str, steps: int, times: dict, first: dict, flops: dict, params: dict,
                  flops_what: str) -> float:
    """The per-side table and the pairs/s ratio of the second side over the first (CUT over
    CycleGAN, or the overrides of --against over the step as it is) of one config."""
    base, kind = list(times)
    rate = {side: BATCH * steps / statistics.median(times[side]) for side in times}
    width = max(9, *map(len, times))
    print(f"  {'':{width}} {'ms/step':>9} {'pairs/s':>8} {'first s':>8} {'GFLOP/step':>10} "
          f"{'GFLOP/s':>8} {'params':>11} {'vs ' + base:>11}")
    for side in times:
        step_s = BATCH / rate[side]
        gflops = flops[side] / 1e9
        print(f"  {side:{width}} {step_s * 1e3:9.1f} {rate[side]:8.3f} {first[side]:8.1f} "
              f"{gflops:10.1f} {gflops / step_s:8.1f} {sum(params[side].values()):11,d} "
              f"{rate[side] / rate[base]:11.2f}")
    for side in times:
        print(f"  {side} params: " + " + ".join(f"{net} {n:,d}" for net, n in params[side].items()))
    print(f"  ms/step: median over the rounds; pairs/s: global batch {BATCH} / ms/step; first s: "
          f"trace + compile + 1 step; GFLOP/step: {flops_what}")
    ratio = rate[kind] / rate[base]
    print(f"  config ({name}) ratio {kind}/{base} {ratio:.2f} in pairs/s (GFLOP/step "
          f"{base}/{kind} {flops[base] / flops[kind]:.2f})", flush=True)
    return ratio


def models_header(name: str, size: int, generator: str, ngf: int) -> None:
    ndf = config_lib.base_config().model.ndf
    print(f"\n== config ({name}): {size} px, {generator}, ngf {ngf}, ndf {ndf}, batch {BATCH}: "
          f"{_compared()} vs {_base()}", flush=True)


def _base() -> str:
    return "as-set" if FLAGS.against else "cyclegan"


def _compared() -> str:
    return ",".join(FLAGS.against) if FLAGS.against else FLAGS.model


def bench_models(name: str, policy: str) -> float:
    """CycleGAN and FLAGS.model built alike (build_model, same generator / critic settings,
    policy, jit, seed and batch), timed alternately on TensorFlow."""
    size, generator, ngf = config_shape(name)
    models_header(name, size, generator, ngf)
    photo, monet = fixed_batch(size)
    runs, flops, params = {}, {}, {}
    for kind in (_base(), _compared()):
        cfg = project_config(size, generator, ngf)
        if FLAGS.against:
            config_lib.apply_overrides(cfg, FLAGS.against if kind != _base() else ())
        else:
            cfg.model.kind = kind
        model, runs[kind], graph = build_ours(cfg, photo, monet, policy)
        conv, nested = conv_flops(graph)
        if nested:
            print(f"  warning: {kind} graph has {len(nested)} nested function calls (not counted)")
        flops[kind] = conv + matmul_flops(graph)
        params[kind] = param_counts(model)
    first = {}
    for kind, run in runs.items():
        start = time.perf_counter()
        loss = run(1)
        first[kind] = time.perf_counter() - start
        print(f"  {kind}: first call (trace + compile + 1 step) {first[kind]:.1f} s, "
              f"gen_total_loss {loss:.4f}", flush=True)
    steps, times = time_rounds({kind: (lambda steps, run=run: timed(run, steps))
                                for kind, run in runs.items()})
    return report_models(name, steps, times, first, flops, params,
                         "Conv2D + backprop and MatMul/Einsum ops of the traced step graph")


def bench_models_jax(name: str) -> float:
    """The same comparison on Keras' JAX backend: both models in the bench/step_jax.py worker."""
    size, generator, ngf = config_shape(name)
    models_header(name, size, generator, ngf)
    platform = "" if tf.config.list_physical_devices("GPU") else "cpu"
    worker = JaxWorker(size, generator, ngf, platform, model=FLAGS.model, against=FLAGS.against)
    try:
        info = worker.info
        sides = info["sides"]
        print(f"  jax worker: JAX {info['jax']}, {info['devices']} x {info['device_kind']}, "
              f"policy {info['policy']}, jit", flush=True)
        for kind, side in sides.items():
            print(f"  {kind}: first call (trace + compile + 1 step) {side['first_call_s']:.1f} s, "
                  f"gen_total_loss {side['loss']:.4f}", flush=True)
        steps, times = time_rounds({kind: (lambda steps, kind=kind: worker.run(steps, kind))
                                    for kind in sides})
    finally:
        worker.close()
    return report_models(
        name, steps, times, {k: v["first_call_s"] for k, v in sides.items()},
        {k: v["flops"] or float("nan") for k, v in sides.items()},
        {k: v["params"] for k, v in sides.items()}, "XLA's cost analysis of the compiled step")


def main(argv: list[str]) -> None:
    del argv
    global BATCH
    BATCH = FLAGS.batch
    on_jax = FLAGS.backend == "jax"
    if on_jax:  # Leave GPU memory to the JAX worker's process as well.
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
    strategy = tf.distribute.get_strategy()
    names = FLAGS.configs or (["a"] if FLAGS.quick else ["a", "b"])
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        commandline.fail(f"--configs={','.join(names)}: unknown {', '.join(unknown)}; choose "
                         f"from {', '.join(CONFIGS)}")
    if FLAGS.precision == "auto" and not os.environ.get(PRECISION_CACHE_ENV):
        # A fresh probe, so that the ratio below judges a measurement of this run.
        os.environ[PRECISION_CACHE_ENV] = os.path.join(
            tempfile.mkdtemp(prefix="monet_tf_bench_"), "precision.json")
    policies = {name: resolve_policy(from_tf_strategy(strategy), name) for name in names}
    shown = [f"({n}) {s} px {g} ngf {f}" for n, (s, g, f) in zip(names, map(config_shape, names))]
    print(f"{os.cpu_count()} CPUs ({cpu_model()}), TF {tf.__version__}, Keras "
          f"{keras.__version__}; backend {FLAGS.backend}; mixed precision '{FLAGS.precision}' -> "
          + ", ".join(f"({n}) {p}" for n, p in policies.items())
          + f", jit_compile 'auto' -> {use_xla('auto', strategy)}; configs {', '.join(shown)}; "
          f"batch {BATCH}; rounds {FLAGS.rounds}, steps "
          f"{FLAGS.steps or f'auto (~{FLAGS.block_seconds:g} s blocks)'}"
          + ("" if FLAGS.model == "cyclegan" and not FLAGS.against
             else f"; {'' if FLAGS.against else 'model '}{_compared()} vs {_base()}"), flush=True)
    if FLAGS.model != "cyclegan" or FLAGS.against:
        if FLAGS.against and FLAGS.model != "cyclegan":
            commandline.fail("--against compares the CycleGAN step with itself; leave --model out")
        try:
            config_lib.apply_overrides(config_lib.base_config(), FLAGS.against)
        except ValueError as err:
            commandline.fail(f"--against {err}")
        ratios = [bench_models_jax(name) if on_jax else bench_models(name, policies[name])
                  for name in names]
        print(f"\nconfigs {', '.join(f'({n}) {r:.2f}' for n, r in zip(names, ratios))}; the "
              f"minimum ({_compared()}/{_base()} pairs/s) is the ratio")
        print(f"ratio {min(ratios):.2f}")
        return
    peak, no_xla = conv_rate(jit=True), conv_rate(jit=False)
    print(f"conv peak (float32 1x128x128x256->256 3x3, tf.function jit): {peak:.0f} GFLOP/s; "
          f"same conv without XLA: {no_xla:.0f} GFLOP/s", flush=True)
    if on_jax:
        tf_peaks = {"XLA float32": peak, "float32 without XLA": no_xla}
        if "mixed_bfloat16" in policies.values():  # What ours runs on: bfloat16 without XLA.
            tf_peaks["bfloat16 without XLA"] = conv_rate(jit=False, dtype=tf.bfloat16)
            print(f"same conv in bfloat16 without XLA: {tf_peaks['bfloat16 without XLA']:.0f} "
                  "GFLOP/s", flush=True)
        ratios = [bench_config_jax(name, tf_peaks, policies[name]) for name in names]
        print(f"\nconfigs {', '.join(f'({n}) {r:.2f}' for n, r in zip(names, ratios))}; "
              f"the minimum (jax/tensorflow pairs/s) is the ratio")
    else:
        ratios, ours = zip(*(bench_config(name, peak, policies[name]) for name in names))
        print(f"\nours ({FLAGS.precision})/plain: "
              + ", ".join(f"({n}) {r:.2f}" for n, r in zip(names, ours)))
        print(f"{FLAGS.precision}/best explicit precision: "
              + ", ".join(f"({n}) {r:.2f}" for n, r in zip(names, ratios))
              + "; the minimum is the ratio (target >= 0.95)")
    print(f"ratio {min(ratios):.2f}")


def resolve_policy(runtime, name: str) -> str:
    """--precision for config `name` as monet_tf.training.job resolves train.mixed_precision on this
    machine (auto on a CPU: the probe at the config's width and size, its line printed)."""
    size, _, ngf = config_shape(name)
    try:
        shape = ProbeShape(ngf, probe_size(size))
        return runtime.precision(FLAGS.precision, lambda backend: cpu_precision(backend, shape))
    finally:
        keras.config.set_dtype_policy("float32")


if __name__ == "__main__":
    commandline.run(main)
