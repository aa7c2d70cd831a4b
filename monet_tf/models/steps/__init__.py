"""The training step per backend, for every model family (models/gan.py's GANModel).

`tf_step`: a GradientTape per replica under tf.distribute, with monet_tf's loss scaling
(`loss_scale`) and per-replica random streams (`replica_rng`); `jax_step`: one stateless
function that Keras' JAX trainer jits. Both run the family's `compute_losses`. Imports nothing
of monet_tf above models/; this file imports no backend.
"""


def static_batch(images) -> int:
    """The batch size a step sees, which must be static (XLA, the image pools, global means)."""
    batch = images.shape[0]
    if batch is None:
        raise ValueError("the training step needs a static batch size (drop_remainder=True)")
    return batch
