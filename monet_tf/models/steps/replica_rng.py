"""A replica-aware RNG for the TensorFlow step under tf.distribute (TensorFlow only).

Its state variable is mirrored with aggregation ONLY_FIRST_REPLICA, so it can be assigned inside
strategy.run and is checkpointed by tf.train.Checkpoint. The JAX step needs none of this: it is
one program over the global batch and uses a plain keras.random.SeedGenerator.
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
    into the seed so replicas sample independently (shared=True: every replica draws the same
    numbers). Works with every keras.random function. Unlike a plain SeedGenerator it is
    trackable, so tf.train.Checkpoint saves its state.
    """

    REPLICA_STRIDE = 1_000_003

    def __init__(self, seed: int = 0, name: str | None = None, shared: bool = False, **kwargs):
        # Deliberately not SeedGenerator.__init__: its state variable has aggregation "none".
        from keras.src import backend

        self.name = name or "replica_seed_generator"
        self.backend = backend
        self._initial_seed = int(seed)
        self.stride = 0 if shared else self.REPLICA_STRIDE
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
        return value + ops.stack([_replica_id(value.dtype) * self.stride, ops.zeros((), value.dtype)])


def _replica_id(dtype):
    context = tf.distribute.get_replica_context()
    if context is None:  # cross-replica context: behave like replica 0
        return tf.zeros((), dtype)
    return tf.cast(context.replica_id_in_sync_group, dtype)
