"""Learning-rate schedule of the CycleGAN paper: constant, then linear decay to zero."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="monet_tf")
class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """initial_learning_rate for constant_steps, then linearly to 0 over decay_steps.

    Driven by the optimizer's iteration count, so a restored optimizer resumes on the curve.
    """

    def __init__(self, initial_learning_rate: float, constant_steps: int, decay_steps: int):
        if constant_steps < 0 or decay_steps < 0:
            raise ValueError(
                f"LinearDecay steps must be >= 0, got constant_steps={constant_steps}, "
                f"decay_steps={decay_steps}"
            )
        self.initial_learning_rate = float(initial_learning_rate)
        self.constant_steps = int(constant_steps)
        self.decay_steps = int(decay_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        if self.decay_steps == 0:
            fraction = ops.where(step < self.constant_steps, 1.0, 0.0)
        else:
            fraction = 1.0 - (step - self.constant_steps) / float(self.decay_steps)
            fraction = ops.clip(fraction, 0.0, 1.0)
        return self.initial_learning_rate * fraction

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "constant_steps": self.constant_steps,
            "decay_steps": self.decay_steps,
        }
