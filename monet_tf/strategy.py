"""Where the training step runs: tf.distribute strategy by name, and the mixed-precision policy."""

from __future__ import annotations

import json
import logging
import os

import keras
import tensorflow as tf

STRATEGIES = ("tpu", "gpu", "cpu")
POLICIES = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
JIT_SETTINGS = ("auto", "true", "false")

log = logging.getLogger(__name__)


class StrategyError(RuntimeError):
    """The requested strategy cannot run on this machine; the message names the flag."""


def get_strategy(name: str, tpu: str = "", cpu_replicas: int = 1) -> tf.distribute.Strategy:
    """tpu: TPUStrategy (tpu="" or "local": this TPU VM; else a TPU name or grpc:// address).
    gpu: MirroredStrategy over all GPUs. cpu: the default strategy, or MirroredStrategy over
    cpu_replicas logical CPU devices. With TF_CONFIG set, gpu/cpu use MultiWorkerMirroredStrategy.
    """
    if name not in STRATEGIES:
        raise StrategyError(f"--strategy={name!r} is not one of {', '.join(STRATEGIES)}")
    if cpu_replicas < 1:
        raise StrategyError(f"--cpu_replicas={cpu_replicas} must be >= 1")
    if name == "tpu":
        return _tpu_strategy(tpu or "local")
    if name == "gpu" and not tf.config.list_physical_devices("GPU"):
        raise StrategyError(
            "--strategy=gpu but TensorFlow sees no GPU (check the CUDA install / "
            "CUDA_VISIBLE_DEVICES), or use --strategy=cpu"
        )
    if os.environ.get("TF_CONFIG"):
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "gpu":
        return tf.distribute.MirroredStrategy()
    if cpu_replicas == 1:
        return tf.distribute.get_strategy()
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


def _check_tf_config() -> None:
    try:
        json.loads(os.environ["TF_CONFIG"])
    except json.JSONDecodeError as e:
        raise StrategyError(f"TF_CONFIG is not valid JSON: {e}") from e


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
    """True when the CPU computes bfloat16 natively (AVX512-BF16 or AMX), so oneDNN's bfloat16
    convolutions beat float32 (the training step runs 1.4-1.8x faster on an AVX512-BF16 EPYC:
    bench/train_step.py). Read from /proc/cpuinfo; False where that does not exist."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return bool({"avx512_bf16", "amx_bf16"} & set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return False


def _mirrored_over_local_cpus(strategy: tf.distribute.Strategy) -> bool:
    """XLA cannot address variables of a second logical CPU device (TF known issue)."""
    if not isinstance(strategy, tf.distribute.MirroredStrategy):
        return False
    devices = strategy.extended.worker_devices
    return len(devices) > 1 and all("CPU" in d.upper() for d in devices)


def use_xla(setting, strategy: tf.distribute.Strategy) -> bool:
    """train.jit_compile: true | false | auto. auto compiles the step with XLA on TPU and GPU but
    not on a CPU-only host, where TensorFlow's oneDNN kernels run it faster than XLA:CPU does
    (0.76-0.78x with XLA in bench/train_step.py), as Keras' own jit_compile="auto" decides.
    Mirrored over logical CPU devices never uses XLA, whatever the setting."""
    value = str(setting).lower()
    if value not in JIT_SETTINGS:
        raise StrategyError(
            f"--config.train.jit_compile={setting!r} is not one of {', '.join(JIT_SETTINGS)}"
        )
    if _mirrored_over_local_cpus(strategy):
        return False
    if value == "auto":
        return isinstance(strategy, tf.distribute.TPUStrategy) or bool(
            tf.config.list_physical_devices("GPU")
        )
    return value == "true"


def set_mixed_precision(policy: str, strategy: tf.distribute.Strategy) -> str:
    """Sets Keras' global dtype policy and returns its name.

    auto: mixed_bfloat16 on TPU and on CPUs with native bfloat16, mixed_float16 on GPU, float32
    otherwise. Set it before building the models. Under mixed_float16 CycleGAN.compile wraps each
    optimizer in a LossScaleOptimizer; networks end in float32 layers and losses are computed in
    float32.
    """
    if policy not in POLICIES:
        raise StrategyError(f"mixed_precision={policy!r} is not one of {', '.join(POLICIES)}")
    if policy == "auto":
        if isinstance(strategy, tf.distribute.TPUStrategy):
            policy = "mixed_bfloat16"
        elif tf.config.list_physical_devices("GPU"):
            policy = "mixed_float16"
        elif cpu_has_native_bfloat16():
            policy = "mixed_bfloat16"
        else:
            policy = "float32"
    keras.config.set_dtype_policy(policy)
    log.info("mixed precision policy: %s", policy)
    return policy
