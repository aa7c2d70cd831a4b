"""Building blocks shared by the generators and critics (keras.layers / keras.ops only)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


class ReflectionPadding2D(keras.layers.Layer):
    """Mirror-pads height and width (no edge repeat), as nn.ReflectionPad2d in the reference."""

    def __init__(self, padding: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, x):
        p = self.padding
        return ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        grow = lambda d: None if d is None else d + 2 * self.padding  # noqa: E731
        return (b, grow(h), grow(w), c)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package="monet_tf")
class SeededNormal(keras.initializers.Initializer):
    """N(mean, stddev) drawn by NumPy from an int seed: the same weights on every backend.

    (Keras' RandomNormal draws with the backend's RNG, so TensorFlow and JAX start from different
    weights, and on JAX each new weight shape costs an XLA compilation.)
    """

    def __init__(self, seed: int, mean: float = 0.0, stddev: float = 0.02):
        self.seed, self.mean, self.stddev = int(seed), float(mean), float(stddev)

    def __call__(self, shape, dtype=None):
        values = np.random.default_rng(self.seed).normal(self.mean, self.stddev, tuple(shape))
        return ops.convert_to_tensor(values, dtype=dtype or "float32")

    def get_config(self):
        return {"seed": self.seed, "mean": self.mean, "stddev": self.stddev}


class Initializers:
    """Hands out N(0, 0.02) initializers, one distinct seed per layer.

    A seeded initializer returns the same values on every call, so layers of the same shape
    would start identical; counting seeds keeps every weight different yet reproducible, and
    the same on TensorFlow and JAX. `seed=None` draws from Keras' global seed instead.
    """

    def __init__(self, seed: int | None = None, stddev: float = 0.02):
        self.seed = seed
        self.stddev = stddev
        self._count = 0

    def __call__(self) -> keras.initializers.Initializer:
        if self.seed is None:
            return keras.initializers.RandomNormal(mean=0.0, stddev=self.stddev)
        seed = (self.seed * 7919 + self._count) % (2**31 - 1)
        self._count += 1
        return SeededNormal(seed, stddev=self.stddev)


def instance_norm(epsilon: float = 1e-5, name: str | None = None) -> keras.layers.Layer:
    """Instance normalisation without learned scale/offset.

    The reference CycleGAN uses nn.InstanceNorm2d(affine=False); GroupNormalization with one group
    per channel is exactly that. Epsilon defaults to PyTorch's 1e-5 (Keras' default is 1e-3).
    Convolutions feeding it are built without bias: the mean subtraction cancels a bias anyway.
    """
    return keras.layers.GroupNormalization(
        groups=-1, epsilon=epsilon, center=False, scale=False, name=name
    )


def full_precision_output(activation: str, name: str) -> keras.layers.Layer:
    """Final activation in the variables' dtype, so outputs and losses stay float32 under mixed
    precision (and float64 in a float64 model)."""
    return keras.layers.Activation(activation, dtype=keras.config.dtype_policy().variable_dtype,
                                   name=name)
