"""The image history pool of the training step (keras.ops only: runs on TensorFlow and JAX).

Its state lives in variables so that it is checkpointed, runs inside XLA and on TPU. Under
tf.distribute the variables are ON_READ / ONLY_FIRST_REPLICA, so each replica keeps its own pool
(a mirrored variable cannot hold different values per replica); a checkpoint stores, and a
restore broadcasts, the first replica's value. On JAX the step is one program over the global
batch, so there is one pool, and the same flags are ignored.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


class ImagePool(keras.layers.Layer):
    """Image history buffer of Shrivastava et al. as in pytorch-CycleGAN's ImagePool.

    While filling, each new image is stored and returned. Once full, each image is swapped with a
    random stored one (which is returned) with probability 0.5, else returned as is.
    pool_size 0 turns the pool off (query returns its input).
    """

    def __init__(self, pool_size: int, image_shape: tuple[int, int, int], **kwargs):
        super().__init__(dtype="float32", **kwargs)
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0, got {pool_size}")
        self.pool_size = int(pool_size)
        self.image_shape = tuple(int(d) for d in image_shape)
        if self.pool_size:
            self.images = keras.Variable(
                np.zeros((self.pool_size, *self.image_shape), np.float32),
                trainable=False,
                autocast=False,
                synchronization="on_read",
                aggregation="only_first_replica",
                name="images",
            )
            self.count = keras.Variable(
                0,
                dtype="int32",
                trainable=False,
                synchronization="on_read",
                aggregation="only_first_replica",
                name="count",
            )
        self.built = True

    def query(self, images, seed=None, draws=None):
        """Returns a batch for the critic and updates this replica's pool.

        draws: optional (u [B] in [0, 1), index [B] in [0, pool_size)) replacing the random
        draws from `seed` (for deterministic tests). The batch size must be static.
        """
        if not self.pool_size:
            return images
        images = ops.cast(images, "float32")
        batch = images.shape[0]
        if batch is None:
            raise ValueError("ImagePool.query needs a static batch size (use drop_remainder=True)")
        if draws is None:
            u = keras.random.uniform((batch,), seed=seed)
            index = keras.random.randint((batch,), 0, self.pool_size, seed=seed)
        else:
            u, index = (ops.convert_to_tensor(d) for d in draws)
        index = ops.cast(index, "int32")
        pool = _local_value(self.images)
        count = _local_value(self.count)
        outputs = []
        for b in range(batch):
            image = images[b]
            filled = count + b
            full = filled >= self.pool_size
            swap = ops.logical_and(full, u[b] > 0.5)
            slot = ops.where(full, index[b], ops.minimum(filled, self.pool_size - 1))
            stored = ops.take(pool, slot, axis=0)
            write = ops.logical_or(ops.logical_not(full), swap)
            outputs.append(ops.where(swap, stored, image))
            pool = ops.slice_update(
                pool, (slot, 0, 0, 0), ops.expand_dims(ops.where(write, image, stored), 0)
            )
        self.images.assign(pool)
        self.count.assign(ops.minimum(count + batch, self.pool_size))
        return ops.stack(outputs)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "image_shape": self.image_shape}


def _local_value(variable):
    """This replica's value of an ON_READ variable (its own copy, not the aggregate)."""
    if keras.backend.backend() != "tensorflow":
        return variable.value
    import tensorflow as tf

    return tf.convert_to_tensor(variable.value)
