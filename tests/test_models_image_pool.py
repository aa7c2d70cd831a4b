"""Image history pool semantics (controlled draws) and per-replica state."""

import numpy as np
import tensorflow as tf

from monet_tf.models import ImagePool, ReplicaSeedGenerator


def _img(v):
    return np.full((1, 2, 2, 3), v, "float32")


def _query(pool, values, u, index):
    out = pool.query(np.concatenate([_img(v) for v in values]), draws=(u, index))
    return np.asarray(out)[:, 0, 0, 0].tolist()


def _stored(pool):
    return np.asarray(pool.images.value)[:, 0, 0, 0].tolist()


def test_fills_then_swaps_with_probability_half():
    pool = ImagePool(3, (2, 2, 3))
    # Filling: images are stored and returned whatever the draws say.
    assert _query(pool, [1, 2], [0.9, 0.9], [0, 0]) == [1, 2]
    assert _stored(pool) == [1, 2, 0] and int(pool.count.value) == 2
    # The third fills the pool; the fourth (same batch) finds it full: u > 0.5 swaps with slot 0.
    assert _query(pool, [3, 4], [0.1, 0.9], [2, 0]) == [3, 1]
    assert _stored(pool) == [4, 2, 3] and int(pool.count.value) == 3
    # u <= 0.5: the new image is returned and the pool is unchanged.
    assert _query(pool, [5], [0.5], [1]) == [5]
    assert _stored(pool) == [4, 2, 3]
    # u > 0.5: the stored image in slot 1 is returned and replaced.
    assert _query(pool, [6], [0.7], [1]) == [2]
    assert _stored(pool) == [4, 6, 3]


def test_random_draws_reach_every_slot_about_half_the_time():
    pool = ImagePool(4, (2, 2, 3))
    rng = ReplicaSeedGenerator(0)
    pool.query(np.concatenate([_img(-i) for i in range(1, 5)]), seed=rng)
    swapped = 0
    for i in range(200):
        out = float(np.asarray(pool.query(_img(i), seed=rng))[0, 0, 0, 0])
        swapped += out != i
    assert 70 < swapped < 130
    assert sorted(set(_stored(pool))) == sorted(_stored(pool))  # no image stored twice


def test_size_zero_is_off():
    pool = ImagePool(0, (2, 2, 3))
    x = _img(7)
    assert pool.query(x) is x
    assert not pool.variables


def test_each_replica_keeps_its_own_pool(two_cpu_strategy):
    strategy = two_cpu_strategy
    with strategy.scope():
        pool = ImagePool(2, (2, 2, 3))
        rng = ReplicaSeedGenerator(1)

    @tf.function
    def step(x):
        return strategy.run(lambda x: (pool.query(x, seed=rng), rng.next()), args=(x,))

    for i in range(3):
        x = strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.fill([1, 2, 2, 3], 10.0 * (ctx.replica_id_in_sync_group + 1) + i)
        )
        out, seeds = step(x)
    per_replica = [set(np.asarray(v)[:, 0, 0, 0].tolist()) for v in pool.images.value.values]
    assert len(per_replica[0]) == 2 and per_replica[0] <= {10.0, 11.0, 12.0}
    assert len(per_replica[1]) == 2 and per_replica[1] <= {20.0, 21.0, 22.0}
    a, b = (np.asarray(s) for s in strategy.experimental_local_results(seeds))
    assert not np.array_equal(a, b)  # replicas draw different random numbers
