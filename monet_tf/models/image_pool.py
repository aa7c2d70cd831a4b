"""Per-replica state of the training step: the image history pool and a replica-aware RNG.

Both live in variables so that they are checkpointed, run inside XLA and on TPU. Their variables
are created with synchronization ON_READ / aggregation ONLY_FIRST_REPLICA where each replica must
keep its own value (a mirrored variable cannot hold different values per replica); a checkpoint
stores, and a restore broadcasts, the first replica's value.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops


class ReplicaSeedGenerator(keras.random.SeedGenerator, tf.__internal__.tracking.AutoTrackable):
    """A SeedGenerator whose stream differs per replica.

    The state [seed, counter] is mirrored and advances identically on every replica (aggregation
    ONLY_FIRST_REPLICA, so it can be assigned inside strategy.run); each draw folds the replica id
    into the seed so replicas sample independently. Works with every keras.random function.
    Unlike a plain SeedGenerator it is trackable, so tf.train.Checkpoint saves its state.
    """

    REPLICA_STRIDE = 1_000_003

    def __init__(self, seed: int = 0, name: str | None = None, **kwargs):
        # Deliberately not SeedGenerator.__init__: its state variable has aggregation "none".
        from keras.src import backend

        self.name = name or "replica_seed_generator"
        self.backend = backend
        self._initial_seed = int(seed)
        initial = np.array([int(seed), 0])

        def seed_initializer(*args, **kwargs):
            return backend.convert_to_tensor(initial, dtype=kwargs.get("dtype"))

        with backend.name_scope(self.name, caller=self):
            self.state = backend.Variable(
                seed_initializer,
                shape=(2,),
                dtype=backend.random_seed_dtype(),
                trainable=False,
                aggregation="only_first_replica",
                name="seed_generator_state",
            )

    def next(self, ordered: bool = True):
        value = self.state.value * 1
        self.state.assign(value + ops.convert_to_tensor(np.array([0, 1]), dtype=value.dtype))
        return value + ops.stack([_replica_id(value.dtype) * self.REPLICA_STRIDE, ops.zeros((), value.dtype)])


def _replica_id(dtype):
    context = tf.distribute.get_replica_context()
    if context is None:  # cross-replica context: behave like replica 0
        return tf.zeros((), dtype)
    return tf.cast(context.replica_id_in_sync_group, dtype)


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
    return tf.convert_to_tensor(variable.value)
