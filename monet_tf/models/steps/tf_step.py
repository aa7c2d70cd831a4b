"""The training step on TensorFlow: a GradientTape over a model family's shared loss maths.

Runs per replica under tf.distribute: each replica's losses are its share of the global-batch
mean, so the gradients Keras' optimizers sum over replicas are those of the global mean.
"""

from __future__ import annotations

import tensorflow as tf
from keras import ops

from monet_tf.models.steps import static_batch
from monet_tf.models.steps.loss_scale import count_nonfinite


def train_step(model, data):
    photo, monet = data
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if multi_worker():
        # Over several workers each batch comes through get_next_as_optional, which drops the
        # static batch size; every worker's batches are whole (each has the same count).
        per_replica = model.global_batch_size // replicas
        photo = tf.ensure_shape(photo, [per_replica, *photo.shape[1:]])
        monet = tf.ensure_shape(monet, [per_replica, *monet.shape[1:]])
    global_batch = static_batch(photo) * replicas
    with tf.GradientTape(persistent=True) as tape:
        terms = model.compute_losses(photo, monet, global_batch)
    for loss, names in model.LOSS_GROUPS:
        _apply(tape, terms[loss], model.loss_scale_of(loss),
               [(getattr(model, name), model.optimizer_of(name)) for name in names])
    del tape

    values = ops.stack([terms[name] for name in model.METRICS])
    # Each replica holds its share of the global mean: the sum over replicas is the mean.
    context = tf.distribute.get_replica_context()
    if context is not None:
        values = context.all_reduce(tf.distribute.ReduceOp.SUM, values)
    for i, name in enumerate(model.METRICS):
        model.trackers[name].update_state(values[i])
    logs = {name: tracker.result() for name, tracker in model.trackers.items()}
    if multi_worker():
        # keras#20585: over several workers Keras averages each log with strategy.reduce(MEAN,
        # axis=0), which a scalar has no axis for. The logs are the same on every replica.
        logs = {name: ops.reshape(value, [1]) for name, value in logs.items()}
    return logs


def multi_worker() -> bool:
    return isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy)


def _apply(tape, loss, loss_scale, pairs):
    """One backward pass of `loss` for all its (network, optimizer) pairs, then each applies
    its share. With a loss scale, the pass is seeded with the scale, and a step whose gradients
    are not finite on any replica is skipped on every replica but still counted."""
    variables = [v for network, _ in pairs for v in network.trainable_variables]
    if loss_scale is None:
        _apply_each(pairs, tape.gradient(loss, variables))
        return
    scale = loss_scale.scale.value
    grads = [g / scale for g in tape.gradient(loss, variables, output_gradients=scale)]
    bad = count_nonfinite(grads)
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        bad = context.all_reduce(tf.distribute.ReduceOp.SUM, bad)
    finite = ops.equal(bad, 0.0)

    def skip():
        for _, optimizer in pairs:  # The step happened: the schedule and resume count it.
            optimizer.iterations.assign_add(1)

    if context is None or tf.__internal__.distribute.strategy_supports_no_merge_call():
        tf.cond(finite, lambda: _apply_each(pairs, grads), skip)
    else:
        # A branch that applies gradients holds a merge call, which must not sit in a replica
        # context's cond: decide in the cross-replica context, apply per replica (as Keras'
        # LossScaleOptimizer does). Every replica's `finite` is the same all-reduced value.
        def cross_replica(distribution, finite, grads):
            tf.cond(distribution.experimental_local_results(finite)[0],
                    lambda: distribution.extended.call_for_each_replica(
                        _apply_each, args=(pairs, grads)),
                    skip)

        context.merge_call(cross_replica, args=(finite, grads))
    loss_scale.update(finite)


def _apply_each(pairs, grads):
    start = 0
    for network, optimizer in pairs:
        n = len(network.trainable_variables)
        optimizer.apply(grads[start : start + n], network.trainable_variables)
        start += n
