"""monet_tf: unpaired photo-to-Monet translation (CycleGAN and successors) in TensorFlow / Keras 3.

Data flows one way: files -> `monet_tf.data` (tf.data) -> `monet_tf.models` (Keras) ->
`monet_tf.train` (callbacks, checkpoints) -> `monet_tf.export` / `monet_tf.predict`.
"""

import sys

__version__ = "0.1.0"

if sys.argv[:1] == ["-m"]:
    # `python -m monet_tf.<tool>`: runpy imports this package, and the tool's own package (which
    # may load TensorFlow), before the tool's module runs; quieten the console here, first.
    from monet_tf.cli import prepare

    prepare(backend=None)
