"""Building blocks shared by the generators and critics (keras.layers / keras.ops only)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from monet_tf.config import INSTANCE_NORMS, REFLECT_PADDINGS


class ReflectionPadding2D(keras.layers.Layer):
    """Mirror-pads height and width (no edge repeat), as nn.ReflectionPad2d in the reference.

    method "pad": ops.pad(mode="reflect"), which XLA lowers to slices, reversals and one
    concatenation per axis, each written out as a copy. "gather": one take per axis with the
    mirrored indices fixed at trace time, the same values by construction; a gather is an op
    XLA can fuse with the elementwise producer (norm, activation) into one pass that writes
    only the padded tensor. Which is faster is the hardware's to say (docs/benchmarks.md).
    """

    def __init__(self, padding: int = 1, method: str = "pad", **kwargs):
        super().__init__(**kwargs)
        if method not in REFLECT_PADDINGS:
            raise ValueError(f"reflection padding method must be one of "
                             f"{', '.join(REFLECT_PADDINGS)}, got {method!r}")
        self.padding = int(padding)
        self.method = method

    def call(self, x):
        p = self.padding
        if self.method == "pad":
            return ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")
        height, width = x.shape[1], x.shape[2]
        x = ops.take(x, reflected_indices(height, p), axis=1)
        return ops.take(x, reflected_indices(width, p), axis=2)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        grow = lambda d: None if d is None else d + 2 * self.padding  # noqa: E731
        return (b, grow(h), grow(w), c)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "method": self.method}


def reflected_indices(size: int, padding: int) -> np.ndarray:
    """Source index of each position of a reflect-padded axis: p..1, 0..size-1, size-2..size-1-p."""
    if size is None:
        raise ValueError("gather reflection padding needs static height and width")
    if padding >= size:
        raise ValueError(f"reflection padding {padding} needs a side longer than it, got {size}")
    positions = np.arange(-padding, size + padding)
    return np.abs((size - 1) - np.abs((size - 1) - np.abs(positions))).astype("int32")


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


class InstanceNormalization(keras.layers.Layer):
    """Instance normalisation without learned scale/offset, written for accelerators.

    keras.layers.GroupNormalization(groups=-1) reshapes into groups, casts the whole layer to
    float32 and takes the variance in a second pass over the input. Here the mean and the mean
    square come from one float32 pass (XLA fuses both reductions and the cast into it), and the
    normalisation is one multiply-add in float32 cast back to the input's dtype, which XLA
    fuses with the activation that follows. E[x^2] - E[x]^2 loses digits only when |mean| is
    many standard deviations: the convolutions before it have no bias and zero-mean weights.
    No weights, so a checkpoint of either layer restores into the other.
    """

    def __init__(self, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.supports_masking = True

    def call(self, x):
        wide = "float32" if keras.backend.standardize_dtype(x.dtype) in ("float16", "bfloat16") \
            else x.dtype  # float64 models stay float64.
        x = ops.cast(x, wide)
        mean = ops.mean(x, axis=(1, 2), keepdims=True)
        mean_square = ops.mean(ops.square(x), axis=(1, 2), keepdims=True)
        inverse = ops.rsqrt(ops.maximum(mean_square - ops.square(mean), 0.0) + self.epsilon)
        return ops.cast(x * inverse - mean * inverse, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def instance_norm(epsilon: float = 1e-5, name: str | None = None,
                  method: str = "group_norm") -> keras.layers.Layer:
    """Instance normalisation without learned scale/offset.

    The reference CycleGAN uses nn.InstanceNorm2d(affine=False); GroupNormalization with one group
    per channel is exactly that ("group_norm"); "one_pass" is InstanceNormalization above, equal
    within float rounding. Epsilon defaults to PyTorch's 1e-5 (Keras' default is 1e-3).
    Convolutions feeding it are built without bias: the mean subtraction cancels a bias anyway.
    """
    if method == "one_pass":
        return InstanceNormalization(epsilon, name=name)
    if method != "group_norm":
        raise ValueError(f"instance norm must be one of {', '.join(INSTANCE_NORMS)}, "
                         f"got {method!r}")
    return keras.layers.GroupNormalization(
        groups=-1, epsilon=epsilon, center=False, scale=False, name=name
    )


class DepthToSpace(keras.layers.Layer):
    """[B, H, W, r*r*C] -> [B, rH, rW, C], tf.nn.depth_to_space's order: out[b, r*h + i,
    r*w + j, c] = in[b, h, w, (r*i + j)*C + c] (the sub-pixel convolution of Shi et al. 2016)."""

    def __init__(self, block_size: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def call(self, x):
        r = self.block_size
        _, h, w, c = x.shape
        x = ops.reshape(x, (-1, h, w, r, r, c // (r * r)))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, h * r, w * r, c // (r * r)))

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        r = self.block_size
        grow = lambda d: None if d is None else d * r  # noqa: E731
        return (b, grow(h), grow(w), c // (r * r))

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


@keras.saving.register_keras_serializable(package="monet_tf")
class ICNR(keras.initializers.Initializer):
    """Sub-pixel kernels that start as nearest-neighbour upsampling of one convolution (Aitken
    et al. 2017): `base`'s kernel for C outputs repeated for each of the r*r sub-pixels, so
    the first steps carry no checkerboard."""

    def __init__(self, base, block_size: int = 2):
        self.base = keras.initializers.get(base)
        self.block_size = int(block_size)

    def __call__(self, shape, dtype=None):
        *window, inputs, outputs = shape
        copies = self.block_size**2
        kernel = self.base((*window, inputs, outputs // copies), dtype=dtype)
        return ops.tile(kernel, (1,) * len(window) + (1, copies))

    def get_config(self):
        return {"base": keras.initializers.serialize(self.base), "block_size": self.block_size}


def full_precision_output(activation: str, name: str) -> keras.layers.Layer:
    """Final activation in the variables' dtype, so outputs and losses stay float32 under mixed
    precision (and float64 in a float64 model)."""
    return keras.layers.Activation(activation, dtype=keras.config.dtype_policy().variable_dtype,
                                   name=name)
