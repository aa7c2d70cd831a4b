"""Dynamic loss scaling for mixed_float16, one scale per loss (keras.ops only).

Keras' LossScaleOptimizer scales per optimizer: with two networks per loss that meant one
backward pass per network, a finiteness check on one replica's gradients only (Keras takes the
first replica's answer), and a skipped step that left the optimizer's iteration count (our step
count, the learning-rate schedule, the resume offset) one behind. Here the step differentiates
each loss once, seeded with its scale, decides on all replicas' gradients together, and counts a
skipped step as a step (see models/steps/tf_step.py).
"""

from __future__ import annotations

import keras
from keras import ops


class DynamicLossScale(keras.layers.Layer):
    """The scale of one loss: halved on a step with a non-finite gradient (the step is skipped),
    doubled after `growth_steps` finite steps in a row. Keras' and PyTorch's defaults."""

    def __init__(self, initial_scale: float = 2.0**15, growth_steps: int = 2000, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self.growth_steps = int(growth_steps)
        # Every replica computes the same update from all-reduced counts: the first one's value.
        self.scale = keras.Variable(float(initial_scale), dtype="float32", trainable=False,
                                    aggregation="only_first_replica", name="scale")
        self.good_steps = keras.Variable(0, dtype="int32", trainable=False,
                                         aggregation="only_first_replica", name="good_steps")
        self.built = True

    def update(self, finite) -> None:
        grow = ops.logical_and(finite, ops.greater_equal(self.good_steps + 1, self.growth_steps))
        self.scale.assign(ops.where(
            finite, ops.where(grow, self.scale * 2.0, self.scale),
            ops.maximum(self.scale * 0.5, 1.0)))
        self.good_steps.assign(ops.where(ops.logical_and(finite, ops.logical_not(grow)),
                                         self.good_steps + 1, 0))


def count_nonfinite(grads) -> object:
    """Non-finite entries over a list of gradients, as float32 (summable across replicas)."""
    return ops.sum(ops.stack([ops.sum(ops.cast(ops.logical_not(ops.isfinite(g)), "float32"))
                              for g in grads if g is not None]))
