"""Where the training step runs: tf.distribute strategy by name, and the XLA rule per device kind
(monet_tf.runtime.devices applies it, and monet_tf.runtime.precision's rule for precision)."""

from __future__ import annotations

import json
import re

import tensorflow as tf

from monet_tf.runtime import cluster as clusters

STRATEGIES = ("tpu", "gpu", "cpu")
JIT_SETTINGS = ("auto", "true", "false")


class StrategyError(RuntimeError):
    """The requested strategy cannot run on this machine; the message names the flag."""


def strategy_kind(name: str, gpus: int, cpu_replicas: int = 1, multi_worker: bool = False) -> str:
    """default | mirrored | multi_worker | tpu: which tf.distribute strategy `--strategy` means.

    One GPU trains under the default strategy: a MirroredStrategy over one device only adds
    merge calls and keeps XLA off (see use_xla).
    """
    if name == "tpu":
        return "tpu"
    if multi_worker:
        return "multi_worker"
    devices = gpus if name == "gpu" else cpu_replicas
    return "mirrored" if devices > 1 else "default"


def get_strategy(name: str, tpu: str = "", cpu_replicas: int = 1,
                 cluster: clusters.Cluster | None = None) -> tf.distribute.Strategy:
    """tpu: TPUStrategy (tpu="" or "local": this TPU VM; else a TPU name or grpc:// address).
    gpu: the default strategy on one GPU, MirroredStrategy over several. cpu: the default
    strategy, or MirroredStrategy over cpu_replicas logical CPU devices. With several processes
    (`cluster`, by default the one TF_CONFIG names), gpu/cpu use MultiWorkerMirroredStrategy.
    """
    if name not in STRATEGIES:
        raise StrategyError(f"--strategy={name!r} is not one of {', '.join(STRATEGIES)}")
    if cpu_replicas < 1:
        raise StrategyError(f"--cpu_replicas={cpu_replicas} must be >= 1")
    if name == "tpu":
        return _tpu_strategy(tpu or "local")
    gpus = len(tf.config.list_physical_devices("GPU"))
    if name == "gpu" and not gpus:
        raise StrategyError(
            "--strategy=gpu but TensorFlow sees no GPU (check the CUDA install / "
            "CUDA_VISIBLE_DEVICES), or use --strategy=cpu"
        )
    if cluster is None:
        try:
            cluster = clusters.from_environment("tensorflow")
        except clusters.ClusterError as e:
            raise StrategyError(str(e)) from None
    kind = strategy_kind(name, gpus, cpu_replicas, multi_worker=cluster.multi)
    if kind == "multi_worker":
        if name == "cpu" and cpu_replicas > 1:
            raise StrategyError(f"--cpu_replicas={cpu_replicas}: MultiWorkerMirroredStrategy "
                                "computes on one CPU device per process; drop the flag")
        return _multi_worker(cluster)
    if kind == "default":
        return tf.distribute.get_strategy()
    if name == "gpu":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.MirroredStrategy(_logical_cpus(cpu_replicas))


def _tpu_strategy(tpu: str) -> tf.distribute.TPUStrategy:
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        if tpu != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        raise StrategyError(
            f"--strategy=tpu --tpu={tpu!r}: TensorFlow cannot reach the TPU: {e}. On a TPU VM "
            "whose TensorFlow has no TPU support (Kaggle's: tensorflow-cpu beside jax[tpu]) train "
            "with --backend=jax; else install a TensorFlow with TPU support (tensorflow-tpu)"
        ) from e
    return tf.distribute.TPUStrategy(resolver)


_MULTI_WORKER: dict = {}  # One per process: a second would start a second server on its port.


def _multi_worker(cluster: clusters.Cluster) -> tf.distribute.MultiWorkerMirroredStrategy:
    """MultiWorkerMirroredStrategy over TF_CONFIG's tasks, its coordination service configured as
    the strategy would configure it but with the cluster's timeouts: a task that never registers
    or stops sending heartbeats ends the run instead of stalling it."""
    if "strategy" in _MULTI_WORKER:
        return _MULTI_WORKER["strategy"]
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.eager import context
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2

    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    spec = resolver.cluster_spec()
    context.context().configure_coordination_service(
        service_type="standalone", service_leader=multi_worker_util.coordination_leader(spec),
        coordinated_jobs=[coordination_config_pb2.CoordinatedJob(name=job,
                                                                  num_tasks=spec.num_tasks(job))
                          for job in ("chief", "worker") if job in spec.jobs],
        cluster_register_timeout_in_ms=int(cluster.timeout * 1000),
        heartbeat_timeout_in_ms=int(cluster.heartbeat * 1000))
    _MULTI_WORKER["strategy"] = tf.distribute.MultiWorkerMirroredStrategy(
        cluster_resolver=resolver)
    return _MULTI_WORKER["strategy"]


def exchange(key: str, index: int, processes: int, text: str, timeout_s: float) -> list[str]:
    """Every process's `text` under `key`, through the coordination service's key-value store
    (multi-worker runs only)."""
    from tensorflow.python.eager import context

    store = context.context()
    store.set_config_key_value(f"{key}/{index}", text)
    return [store.get_config_key_value(f"{key}/{k}", int(timeout_s * 1000))
            for k in range(processes)]


def any_replica(strategy: tf.distribute.Strategy, flags: tuple[bool, ...]) -> tuple[bool, ...]:
    """For each flag, True on every process when True on any (one all-reduce for all)."""
    value = strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant([float(flag) for flag in flags]))
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None).numpy()
    return tuple(bool(v > 0) for v in total)


_TASK = re.compile(r"/job:(chief|worker)/replica:\d+/task:(\d+)")


def lost_task(error: BaseException, cluster: clusters.Cluster) -> int | None:
    """The process a collective's failure names (a peer that stopped answering), else None."""
    if not isinstance(error, (tf.errors.UnavailableError, tf.errors.CancelledError,
                              tf.errors.AbortedError, tf.errors.DeadlineExceededError)):
        return None
    spec = json.loads(cluster.tf_config)["cluster"]
    for job, task in _TASK.findall(str(error)):
        index = clusters.tf_task_process(spec, job, int(task))
        if index != cluster.index:
            return index
    return None


def _logical_cpus(n: int) -> list[str]:
    """n logical CPU devices, creating them if TensorFlow has not initialised its devices yet."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    if tf.config.get_logical_device_configuration(cpu) is None:
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
            )
        except RuntimeError:
            pass  # already initialised: use what exists, checked below
    have = len(tf.config.list_logical_devices("CPU"))
    if have < n:
        raise StrategyError(
            f"--cpu_replicas={n} needs {n} logical CPU devices but TensorFlow was already "
            f"initialised with {have}; call get_strategy before any other TensorFlow work"
        )
    return [f"/cpu:{i}" for i in range(n)]


def cpu_has_native_bfloat16() -> bool:
    """True when the CPU lists a native bfloat16 instruction set (AVX512-BF16 or AMX). A flag is
    not speed: on a Xeon with AVX512-BF16 but no AMX bfloat16 training ran at 0.63x float32, so
    `auto` measures instead (monet_tf.models.precision_probe). Read from /proc/cpuinfo; False where
    that does not exist."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return bool({"avx512_bf16", "amx_bf16"} & set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return False


def kind_of(strategy: tf.distribute.Strategy) -> str:
    """strategy_kind's name for a strategy object."""
    if isinstance(strategy, (tf.distribute.TPUStrategy, tf.distribute.experimental.TPUStrategy)):
        return "tpu"
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi_worker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    return "default"


def xla_choice(setting, kind: str, device_kind: str) -> tuple[bool, str]:
    """(jit_compile for Keras, why) from train.jit_compile and where the step runs.

    - TPUStrategy compiles the whole step with XLA by itself; TF advises against jit_compile
      there, so it stays False whatever the setting.
    - Mirrored and multi-worker strategies never use XLA: keras#21366 (mixed_float16 +
      MirroredStrategy + jit_compile fails in the LossScaleOptimizer's cond) and keras#19005
      (resource errors across devices); Keras' own jit_compile="auto" turns it off there too.
    - The default strategy: auto is XLA on a GPU, off on a CPU, where oneDNN runs the step
      faster than XLA:CPU (0.76-0.78x with XLA in bench/train_step.py); true/false win.
    """
    value = str(setting).lower()
    if value not in JIT_SETTINGS:
        raise StrategyError(
            f"--config.train.jit_compile={setting!r} is not one of {', '.join(JIT_SETTINGS)}"
        )
    if kind == "tpu":
        return False, "XLA by TPUStrategy"
    if kind in ("mirrored", "multi_worker"):
        note = " (jit_compile=true ignored: keras#21366, keras#19005)" if value == "true" else ""
        return False, f"XLA off under {kind} strategy{note}"
    on = device_kind == "gpu" if value == "auto" else value == "true"
    return on, f"XLA {'on' if on else 'off'}"


def _host_device_kind() -> str:
    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"


def use_xla(setting, strategy: tf.distribute.Strategy) -> bool:
    """train.jit_compile for `strategy` on this host: see xla_choice."""
    return xla_choice(setting, kind_of(strategy), _host_device_kind())[0]


def gpu_compute_capability() -> float | None:
    """The first GPU's compute capability as major.minor (7.5 for a T4), None without a GPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    major, minor = tf.config.experimental.get_device_details(gpus[0]).get(
        "compute_capability", (0, 0))
    return float(f"{major}.{minor}")

