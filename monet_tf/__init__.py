"""monet_tf: unpaired photo-to-Monet translation (CycleGAN and successors) in TensorFlow / Keras 3.

Data flows one way: files -> `monet_tf.data` (tf.data) -> `monet_tf.models` (Keras) ->
`monet_tf.train` (callbacks, checkpoints) -> `monet_tf.export` / `monet_tf.predict`.
"""

__version__ = "0.1.0"
