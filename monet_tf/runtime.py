"""Where and how the training step runs, on either Keras backend: devices, precision, XLA.

TensorFlow: a tf.distribute strategy (`monet_tf.strategy`). JAX: all local devices of the asked
kind under `keras.distribution.DataParallel` (global batch = per-device batch x devices), one
SPMD program that XLA always compiles. Call `monet_tf.backend.select_backend` before this module
is imported; Keras fixes its backend on import.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os

import keras

from monet_tf import strategy as tf_strategies
from monet_tf.precision_probe import ProbeResult, ProbeShape, cpu_precision
from monet_tf.strategy import POLICIES, StrategyError

# Environment variables that mean "this process is one of several hosts" (Cloud TPU pods set
# TPU_WORKER_HOSTNAMES to a comma list; Keras and JAX launchers set the others).
_MULTI_HOST_ENV = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "JAX_COORDINATOR_ADDRESS")


@dataclasses.dataclass
class Runtime:
    """The backend and devices of a run. `replicas` divides the global batch: TF replicas in
    sync, or JAX devices (over all hosts)."""

    backend: str
    strategy_name: str
    devices: list[str]
    replicas: int
    tf_strategy: object | None = None  # tf.distribute.Strategy on TensorFlow
    distribution: object | None = None  # keras.distribution.DataParallel on JAX, >1 device
    device_kind: str = "cpu"
    compute_capability: float | None = None  # GPU only
    precision_probe: ProbeResult | None = None  # What `auto` measured on a CPU.

    def scope(self):
        if self.tf_strategy is not None:
            return self.tf_strategy.scope()
        return contextlib.nullcontext()

    def precision(self, policy: str, probe: ProbeShape | None = None) -> str:
        """train.mixed_precision -> the Keras dtype policy, set globally (before building).

        `auto` on a CPU times the probe network (`probe`: the config's, ProbeShape.of) in
        float32 and bfloat16 on this backend, once per machine (monet_tf.precision_probe), and
        prints both timings and the choice."""
        if policy not in POLICIES:
            raise StrategyError(f"mixed_precision={policy!r} is not one of {', '.join(POLICIES)}")
        if self.backend != "tensorflow" and policy == "mixed_float16":
            raise StrategyError(
                "--config.train.mixed_precision=mixed_float16 needs loss scaling, which monet_tf "
                "does on the TensorFlow backend only; on JAX use mixed_bfloat16 or float32")
        if policy == "auto":
            cpu_bfloat16 = False
            if self.device_kind == "cpu":
                self.precision_probe = cpu_precision(self.backend, probe or ProbeShape())
                print(self.precision_probe.describe(), flush=True)
                cpu_bfloat16 = self.precision_probe.choice == "mixed_bfloat16"
            # No loss scaling on JAX: float32 on 7.x GPUs.
            policy = tf_strategies.auto_precision(self.device_kind, self.compute_capability,
                                                  cpu_bfloat16,
                                                  loss_scaling=self.backend == "tensorflow")
        if self.backend == "tensorflow":
            return tf_strategies.set_mixed_precision(policy, self.tf_strategy)
        keras.config.set_dtype_policy(policy)
        return policy

    def xla(self, setting) -> tuple[bool, str]:
        """(jit_compile, a note for the console) for train.jit_compile: auto | true | false.
        On JAX the step is always one XLA program unless `false` (op by op, for debugging)."""
        if self.backend == "tensorflow":
            return tf_strategies.xla_choice(setting, tf_strategies.kind_of(self.tf_strategy),
                                            self.device_kind)
        value = str(setting).lower()
        if value not in tf_strategies.JIT_SETTINGS:
            raise StrategyError(
                f"--config.train.jit_compile={setting!r} is not one of "
                f"{', '.join(tf_strategies.JIT_SETTINGS)}")
        on = value != "false"
        return on, f"XLA {'on' if on else 'off'}"

    def use_xla(self, setting) -> bool:
        return self.xla(setting)[0]

    def describe(self) -> str:
        shown = ", ".join(self.devices[:8]) + (" ..." if len(self.devices) > 8 else "")
        return (f"backend: {self.backend}; strategy {self.strategy_name}: {self.replicas} "
                f"replica(s) on {len(self.devices)} {self.device_kind} device(s) [{shown}]")

    def as_config(self) -> dict:
        """What config.json records under `runtime`."""
        recorded = {"backend": self.backend, "strategy": self.strategy_name,
                     "device_kind": self.device_kind, "devices": list(self.devices),
                     "replicas": self.replicas}
        if self.precision_probe is not None:
            recorded["precision_probe"] = self.precision_probe.as_config()
        return recorded


def make_runtime(strategy: str = "cpu", tpu: str = "local", cpu_replicas: int = 1) -> Runtime:
    """The devices for --strategy on the backend Keras was imported with."""
    if strategy not in tf_strategies.STRATEGIES:
        raise StrategyError(
            f"--strategy={strategy!r} is not one of {', '.join(tf_strategies.STRATEGIES)}")
    if cpu_replicas < 1:
        raise StrategyError(f"--cpu_replicas={cpu_replicas} must be >= 1")
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return from_tf_strategy(tf_strategies.get_strategy(strategy, tpu, cpu_replicas), strategy)
    if backend != "jax":
        raise StrategyError(f"KERAS_BACKEND={backend!r}: monet_tf trains on jax or tensorflow")
    return _jax_runtime(strategy, cpu_replicas)


def from_tf_strategy(strategy, name: str | None = None) -> Runtime:
    try:
        devices = list(strategy.extended.worker_devices)
    except RuntimeError:  # The default strategy: this host's first device.
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        devices = [(gpus or tf.config.list_logical_devices("CPU"))[0].name]
    kind = "tpu" if "TPU" in type(strategy).__name__.upper() else (
        "gpu" if any("GPU" in d.upper() for d in devices) else "cpu")
    capability = tf_strategies.gpu_compute_capability() if kind == "gpu" else None
    return Runtime("tensorflow", name or kind, devices, strategy.num_replicas_in_sync,
                   tf_strategy=strategy, device_kind=kind, compute_capability=capability)


def current() -> Runtime:
    """The runtime when a caller names none: TF's current strategy, or JAX's default devices."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return from_tf_strategy(tf.distribute.get_strategy())
    import jax

    distribution = keras.distribution.distribution()
    devices = (list(distribution.device_mesh.devices.flatten()) if distribution is not None
               else jax.devices()[:1])
    return Runtime("jax", devices[0].platform, [str(d) for d in devices], len(devices),
                   distribution=distribution, device_kind=devices[0].platform)


def _hide_accelerators_from_tensorflow() -> None:
    """On JAX, TensorFlow only feeds data (tf.data) and must not take GPU memory JAX needs."""
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TensorFlow already initialised its devices.
        pass


def _maybe_initialize_multi_host(environ=None) -> bool:
    environ = os.environ if environ is None else environ
    pod = "," in environ.get("TPU_WORKER_HOSTNAMES", "")
    if not pod and not any(environ.get(k) for k in _MULTI_HOST_ENV):
        return False
    keras.distribution.initialize()
    return True


def _jax_runtime(strategy: str, cpu_replicas: int) -> Runtime:
    import jax

    from monet_tf.jax_compat import skip_executable_layouts

    _hide_accelerators_from_tensorflow()
    if strategy == "tpu" and skip_executable_layouts():
        print(f"jax {jax.__version__} < 0.8: compiled programs are not asked for their layouts "
              "(monet_tf/jax_compat.py says why)", flush=True)
    _maybe_initialize_multi_host()
    try:
        devices = jax.devices(strategy)
    except RuntimeError as err:
        raise StrategyError(
            f"--strategy={strategy} --backend=jax but JAX sees no {strategy.upper()} ({err}). "
            + ("Install jax[tpu] on a TPU VM" if strategy == "tpu" else
               "Install jax[cuda12] on a GPU machine" if strategy == "gpu" else "")
            + ", or use --strategy=cpu") from None
    if strategy == "cpu":
        if len(devices) < cpu_replicas:
            raise StrategyError(
                f"--cpu_replicas={cpu_replicas} needs {cpu_replicas} JAX host devices but JAX "
                f"started with {len(devices)}; pass the flag to run_train.py (it sets XLA_FLAGS="
                f"--xla_force_host_platform_device_count before JAX starts)")
        devices = devices[:cpu_replicas]
    distribution = None
    if len(devices) > 1:
        distribution = keras.distribution.DataParallel(devices=devices)
        keras.distribution.set_distribution(distribution)
    capability = None
    if strategy == "gpu":
        try:
            capability = float(getattr(devices[0], "compute_capability", 0.0))
        except (TypeError, ValueError):
            capability = 0.0
    return Runtime("jax", strategy, [str(d) for d in devices], len(devices),
                   distribution=distribution, device_kind=strategy,
                   compute_capability=capability)
