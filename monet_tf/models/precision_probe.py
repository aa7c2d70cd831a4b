"""What `train.mixed_precision=auto` means on a CPU: whichever of float32 and bfloat16 runs the
model's own layers faster here, measured once per machine and cached.

A flag list cannot say it: on an Intel Xeon with AVX512-BF16 but no AMX the bfloat16 training
step ran at 0.63x float32, while an AMD EPYC with the same flag and a Xeon with AMX ran it 1.4-1.8x
faster. So the probe times a forward and backward pass of a one-block ResNet generator at the
config's width (its 7x7 convolution, both downsampling convolutions, a residual block and the
transposed-convolution upsampling: every layer kind of the generators) under each policy, on the
backend the run uses (TensorFlow's oneDNN kernels, or XLA:CPU on JAX), alternately, for about a
second, and keeps the median of each. The timings are cached in a JSON file (PRECISION_CACHE_ENV,
else ~/.cache/monet_tf/precision.json) under a key naming the CPU model, its cores, the backend
and its version, the probe's shape and the oneDNN ISA limits in the environment.

Imports neither TensorFlow nor JAX until it measures: bench/step_jax.py uses it without
TensorFlow.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import platform
import statistics
import tempfile
import time
from typing import Callable

PRECISION_CACHE_ENV = "MONET_TF_PRECISION_CACHE"
# bfloat16 must be this much faster to be chosen: a tie keeps float32's numerics.
BFLOAT16_MARGIN = 0.05
PROBE_GENERATOR = "resnet_1blocks"
MAX_PROBE_SIZE = 128
# Environment settings that change which kernels oneDNN picks (part of the cache key).
ISA_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS")


def choose_cpu_precision(float32_s: float, bfloat16_s: float,
                         margin: float = BFLOAT16_MARGIN) -> str:
    """The Keras policy for a CPU from one probe step's time under each: mixed_bfloat16 only
    when it is faster by more than `margin`, else float32."""
    return "mixed_bfloat16" if bfloat16_s < float32_s * (1.0 - margin) else "float32"


def probe_size(image_size: int) -> int:
    """The probe's image side for a run's: the same up to MAX_PROBE_SIZE (a multiple of 4, as
    the ResNet generators need)."""
    return max(16, min(int(image_size), MAX_PROBE_SIZE) // 4 * 4)


@dataclasses.dataclass(frozen=True)
class ProbeShape:
    """The probe network: a PROBE_GENERATOR of `ngf` filters on one image of `image_size` px;
    jit_compile: under XLA (TensorFlow; a JAX step is always XLA)."""

    ngf: int = 64
    image_size: int = MAX_PROBE_SIZE
    jit_compile: bool = False

    @classmethod
    def of(cls, cfg, jit_compile: bool = False) -> "ProbeShape":
        """The config's generator width at its image size (at most MAX_PROBE_SIZE px)."""
        return cls(int(cfg.model.ngf), probe_size(cfg.data.image_size), bool(jit_compile))

    def describe(self, backend: str) -> str:
        xla = ", XLA" if self.jit_compile and backend == "tensorflow" else ""
        return f"{PROBE_GENERATOR} ngf {self.ngf} at {self.image_size} px{xla}"


@dataclasses.dataclass
class ProbeResult:
    """A probe's timings (ms per forward + backward step) and what auto takes from them."""

    float32_ms: float
    bfloat16_ms: float
    cpu: str
    measured: str  # ISO date
    cached: bool
    cache_path: str
    cache_note: str = ""  # Why it could not be cached, if it could not.

    @property
    def choice(self) -> str:
        return choose_cpu_precision(self.float32_ms, self.bfloat16_ms)

    def describe(self) -> str:
        where = (f"cached from {self.measured} in {self.cache_path}" if self.cached else
                 f"measured now, {self.cache_note or 'cached in ' + self.cache_path}")
        return (f"precision auto on CPU {self.cpu}: float32 {self.float32_ms:.1f} ms, bfloat16 "
                f"{self.bfloat16_ms:.1f} ms per probe step -> {self.choice} ({where})")

    def as_config(self) -> dict:
        """What config.json records under runtime.precision_probe."""
        return {"choice": self.choice, "float32_ms": round(self.float32_ms, 3),
                "bfloat16_ms": round(self.bfloat16_ms, 3), "cpu": self.cpu,
                "measured": self.measured, "cached": self.cached}


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what the platform module says."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # Not on Linux.
        return os.cpu_count() or 1


def cache_path() -> str:
    if os.environ.get(PRECISION_CACHE_ENV):
        return os.environ[PRECISION_CACHE_ENV]
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "monet_tf", "precision.json")


def backend_version(backend: str) -> str:
    if backend == "tensorflow":
        import tensorflow as tf

        return f"tensorflow {tf.__version__}"
    import jax

    return f"jax {jax.__version__}"


def cache_key(backend: str, shape: ProbeShape) -> str:
    """What the timings depend on: the CPU, its cores, the kernels' library and the network."""
    isa = ", ".join(f"{k}={os.environ[k]}" for k in ISA_ENV if os.environ.get(k))
    return " | ".join(part for part in (
        cpu_model(), f"{cpu_cores()} cores", backend_version(backend), shape.describe(backend),
        isa) if part)


def _read_cache(path: str) -> dict:
    try:
        with open(path) as f:
            probes = json.load(f).get("probes", {})
        return probes if isinstance(probes, dict) else {}
    except (OSError, ValueError, AttributeError):
        return {}


def _write_cache(path: str, key: str, entry: dict) -> str:
    """Adds `entry` under `key`; returns "" or why it could not be written."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        probes = _read_cache(path)
        probes[key] = entry
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)),
                                   prefix=".precision-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump({"probes": probes}, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
        return ""
    except OSError as e:
        return f"not cached: {e}"


def cpu_precision(backend: str, shape: ProbeShape = ProbeShape(),
                  measure: Callable[[str, ProbeShape], tuple[float, float]] | None = None
                  ) -> ProbeResult:
    """The probe's result for this CPU: from the cache, else measured (by `measure`, default
    `measure_step`: (float32 seconds, bfloat16 seconds)) and cached."""
    path = cache_path()
    key = cache_key(backend, shape)
    entry = _read_cache(path).get(key)
    if isinstance(entry, dict) and {"float32_ms", "bfloat16_ms", "measured"} <= entry.keys():
        return ProbeResult(float(entry["float32_ms"]), float(entry["bfloat16_ms"]), cpu_model(),
                           str(entry["measured"]), cached=True, cache_path=path)
    float32_s, bfloat16_s = (measure or measure_step)(backend, shape)
    result = ProbeResult(1e3 * float32_s, 1e3 * bfloat16_s, cpu_model(),
                         datetime.date.today().isoformat(), cached=False, cache_path=path)
    result.cache_note = _write_cache(path, key, {
        "float32_ms": round(result.float32_ms, 3), "bfloat16_ms": round(result.bfloat16_ms, 3),
        "measured": result.measured})
    return result


# ------------------------------------------------------------------------------- measurement
POLICIES = ("float32", "mixed_bfloat16")


def alternate(steps: dict[str, Callable[[], object]], budget_s: float = 1.0,
              min_rounds: int = 3, max_rounds: int = 50) -> dict[str, float]:
    """Median seconds of each step, timed in rounds whose order reverses every round, after one
    untimed call each (trace or compile); at least `min_rounds`, then as many as fit in
    `budget_s`."""
    for step in steps.values():
        step()
    times = {name: [] for name in steps}
    started = time.perf_counter()
    rounds = 0
    while rounds < min_rounds or (time.perf_counter() - started < budget_s
                                  and rounds < max_rounds):
        for name in (list(steps) if rounds % 2 == 0 else list(steps)[::-1]):
            start = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - start)
        rounds += 1
    return {name: statistics.median(values) for name, values in times.items()}


@contextlib.contextmanager
def _policy(name: str):
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _generator(shape: ProbeShape, policy: str):
    from monet_tf.models.generators import build_generator

    with _policy(policy):
        return build_generator(PROBE_GENERATOR, ngf=shape.ngf, image_size=shape.image_size,
                               model_name=f"precision_probe_{policy}", seed=0)


def _image(shape: ProbeShape):
    import numpy as np

    rng = np.random.default_rng(0)  # Its own generator: the run's global seeds are untouched.
    return rng.uniform(-1, 1, (1, shape.image_size, shape.image_size, 3)).astype(np.float32)


def _tensorflow_step(shape: ProbeShape, policy: str) -> Callable[[], object]:
    import tensorflow as tf

    generator, image = _generator(shape, policy), tf.constant(_image(shape))

    @tf.function(jit_compile=shape.jit_compile)
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(tf.cast(generator(image, training=True), tf.float32)
                                         - image))
        return tape.gradient(loss, generator.trainable_variables)

    return lambda: step()[0].numpy()


def _jax_step(shape: ProbeShape, policy: str) -> Callable[[], object]:
    import jax
    import jax.numpy as jnp
    import keras
    import numpy as np

    distribution = keras.distribution.distribution()
    keras.distribution.set_distribution(None)  # One device, as one replica's share runs.
    try:
        generator = _generator(shape, policy)
    finally:
        keras.distribution.set_distribution(distribution)
    trainable = [np.asarray(v.value) for v in generator.trainable_variables]
    non_trainable = [np.asarray(v.value) for v in generator.non_trainable_variables]
    image = _image(shape)

    def loss(trainable, non_trainable, image):
        out, _ = generator.stateless_call(trainable, non_trainable, image, training=True)
        return jnp.mean(jnp.abs(out.astype(jnp.float32) - image))

    grad = jax.jit(jax.grad(loss))
    return lambda: jax.block_until_ready(grad(trainable, non_trainable, image))


def measure_step(backend: str, shape: ProbeShape, budget_s: float = 1.0) -> tuple[float, float]:
    """(float32 seconds, bfloat16 seconds) of one probe step on `backend`, on this CPU."""
    make = _tensorflow_step if backend == "tensorflow" else _jax_step
    medians = alternate({policy: make(shape, policy) for policy in POLICIES}, budget_s)
    return medians["float32"], medians["mixed_bfloat16"]
