"""GAN, cycle and identity losses (keras.ops only), always computed in float32.

Every function returns one value per example ([B]); `global_mean` turns a replica's per-example
values into its share of the global-batch mean, so summing gradients over replicas is exact.
"""

from __future__ import annotations

from keras import ops

GAN_LOSSES = ("lsgan", "bce", "hinge")


def _per_example_mean(x):
    x = ops.cast(x, "float32")
    return ops.mean(ops.reshape(x, (ops.shape(x)[0], -1)), axis=1)


def check_gan_loss(name: str) -> str:
    if name not in GAN_LOSSES:
        raise ValueError(f"unknown gan loss {name!r}; choose one of {', '.join(GAN_LOSSES)}")
    return name


def generator_loss(name: str, fake_logits):
    """What the generator minimises so that the critic calls its images real."""
    fake = ops.cast(fake_logits, "float32")
    if check_gan_loss(name) == "lsgan":
        return _per_example_mean(ops.square(fake - 1.0))
    if name == "bce":  # non-saturating: -log sigmoid(D(fake))
        return _per_example_mean(ops.softplus(-fake))
    return _per_example_mean(-fake)  # hinge


def critic_loss(name: str, real_logits, fake_logits):
    """Critic loss, halved as in the reference (mean of the real and the fake term)."""
    real = ops.cast(real_logits, "float32")
    fake = ops.cast(fake_logits, "float32")
    if check_gan_loss(name) == "lsgan":
        terms = _per_example_mean(ops.square(real - 1.0)) + _per_example_mean(ops.square(fake))
    elif name == "bce":  # -log sigmoid(D(real)) - log(1 - sigmoid(D(fake)))
        terms = _per_example_mean(ops.softplus(-real)) + _per_example_mean(ops.softplus(fake))
    else:
        terms = _per_example_mean(ops.relu(1.0 - real)) + _per_example_mean(ops.relu(1.0 + fake))
    return 0.5 * terms


def l1(a, b):
    """Mean absolute difference per example: the cycle and identity losses before weighting."""
    return _per_example_mean(ops.abs(ops.cast(a, "float32") - ops.cast(b, "float32")))


def global_mean(per_example, global_batch_size: int):
    """This replica's share of the mean over the global batch (sum here / global batch)."""
    return ops.sum(ops.cast(per_example, "float32")) / float(global_batch_size)
