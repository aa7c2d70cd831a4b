"""GAN, cycle and identity losses (keras.ops only), computed in full precision.

Full precision is the variables' dtype: float32 under float32 and under mixed precision (bfloat16
or float16 compute), float64 for a model built under a float64 policy (the reference tests).
Every function returns one value per example ([B]); `global_mean` turns a replica's per-example
values into its share of the global-batch mean, so summing gradients over replicas is exact.
"""

from __future__ import annotations

import keras
from keras import ops

from monet_tf.config import GAN_LOSSES


def full_precision() -> str:
    """The dtype losses and network outputs are computed in: the policy's variable dtype."""
    return keras.config.dtype_policy().variable_dtype


def full(x):
    return ops.cast(x, full_precision())


def _per_example_mean(x):
    x = full(x)
    return ops.mean(ops.reshape(x, (ops.shape(x)[0], -1)), axis=1)


def check_gan_loss(name: str) -> str:
    if name not in GAN_LOSSES:
        raise ValueError(f"unknown gan loss {name!r}; choose one of {', '.join(GAN_LOSSES)}")
    return name


def generator_loss(name: str, fake_logits):
    """What the generator minimises so that the critic calls its images real."""
    fake = full(fake_logits)
    if check_gan_loss(name) == "lsgan":
        return _per_example_mean(ops.square(fake - 1.0))
    if name == "bce":  # non-saturating: -log sigmoid(D(fake))
        return _per_example_mean(ops.softplus(-fake))
    return _per_example_mean(-fake)  # hinge


def critic_loss(name: str, real_logits, fake_logits):
    """Critic loss, halved as in the reference (mean of the real and the fake term)."""
    real = full(real_logits)
    fake = full(fake_logits)
    if check_gan_loss(name) == "lsgan":
        terms = _per_example_mean(ops.square(real - 1.0)) + _per_example_mean(ops.square(fake))
    elif name == "bce":  # -log sigmoid(D(real)) - log(1 - sigmoid(D(fake)))
        terms = _per_example_mean(ops.softplus(-real)) + _per_example_mean(ops.softplus(fake))
    else:
        terms = _per_example_mean(ops.relu(1.0 - real)) + _per_example_mean(ops.relu(1.0 + fake))
    return 0.5 * terms


def l1(a, b):
    """Mean absolute difference per example: the cycle and identity losses before weighting."""
    return _per_example_mean(ops.abs(full(a) - full(b)))


def global_mean(per_example, global_batch_size: int):
    """This replica's share of the mean over the global batch (sum here / global batch)."""
    return ops.sum(full(per_example)) / float(global_batch_size)
