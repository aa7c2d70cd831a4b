"""train.mixed_precision=auto's rule per device, in plain Python: the runtime
(monet_tf.runtime.devices) applies it to a run's devices, and a JAX-only tool (bench/step_jax.py)
to a JAX device without importing TensorFlow."""


def auto_precision(device_kind: str, compute_capability: float | None = None,
                   cpu_bfloat16: bool = False, loss_scaling: bool = True) -> str:
    """train.mixed_precision=auto for a device.

    TPU: mixed_bfloat16. GPU: mixed_bfloat16 from compute capability 8.0 (Ampere on; no loss
    scaling needed), mixed_float16 with loss scaling on 7.x (V100, T4: float16 tensor cores but
    no bfloat16), float32 below or where loss scaling is unavailable (JAX). CPU: mixed_bfloat16
    when it was measured faster here (cpu_bfloat16: monet_tf.models.precision_probe), else float32.
    """
    if device_kind == "tpu":
        return "mixed_bfloat16"
    if device_kind == "gpu":
        capability = compute_capability or 0.0
        if capability >= 8.0:
            return "mixed_bfloat16"
        if capability >= 7.0 and loss_scaling:
            return "mixed_float16"
        return "float32"
    return "mixed_bfloat16" if cpu_bfloat16 else "float32"
