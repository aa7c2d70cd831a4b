"""The CycleGAN training step on TensorFlow: a GradientTape over the shared loss maths.

Runs per replica under tf.distribute: each replica's losses are its share of the global-batch
mean, so the gradients Keras' optimizers sum over replicas are those of the global mean.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from monet_tf.models.cyclegan import METRICS


def train_step(model, data):
    photo, monet = data
    batch = photo.shape[0]
    if batch is None:
        raise ValueError("CycleGAN.train_step needs a static batch size (drop_remainder=True)")
    global_batch = batch * tf.distribute.get_strategy().num_replicas_in_sync
    with tf.GradientTape(persistent=True) as tape:
        terms = model.compute_losses(photo, monet, global_batch)
    _apply(tape, terms["gen_total_loss"], [
        (model.photo_to_monet, model.photo_to_monet_optimizer),
        (model.monet_to_photo, model.monet_to_photo_optimizer),
    ])
    _apply(tape, terms["critic_total_loss"], [
        (model.monet_critic, model.monet_critic_optimizer),
        (model.photo_critic, model.photo_critic_optimizer),
    ])
    del tape

    values = ops.stack([terms[name] for name in METRICS])
    # Each replica holds its share of the global mean: the sum over replicas is the mean.
    context = tf.distribute.get_replica_context()
    if context is not None:
        values = context.all_reduce(tf.distribute.ReduceOp.SUM, values)
    for i, name in enumerate(METRICS):
        model.trackers[name].update_state(values[i])
    return {name: tracker.result() for name, tracker in model.trackers.items()}


def _apply(tape, loss, pairs):
    """Gradients of `loss` for each (network, optimizer); one backward pass when unscaled."""
    scaled = [isinstance(o, keras.optimizers.LossScaleOptimizer) for _, o in pairs]
    if not any(scaled):
        variables = [v for network, _ in pairs for v in network.trainable_variables]
        grads = tape.gradient(loss, variables)
        start = 0
        for network, optimizer in pairs:
            n = len(network.trainable_variables)
            optimizer.apply(grads[start : start + n], network.trainable_variables)
            start += n
        return
    for network, optimizer in pairs:
        # Loss scaling as d(scale * loss) without re-recording: seed the backward pass with it.
        scale = ops.cast(optimizer.scale_loss(ops.ones((), "float32")), "float32")
        grads = tape.gradient(loss, network.trainable_variables, output_gradients=scale)
        optimizer.apply(grads, network.trainable_variables)
