"""monet_tf: unpaired photo-to-Monet translation (CycleGAN and successors) in TensorFlow / Keras 3.

Folders by role, each importing only those above it in this list:

- `runtime/`: the Keras backend, devices and strategies, precision, XLA, processes, the console
  and what every command-line tool does the same way;
- `data/`: TFRecords, image folders or TFDS -> validated -> tf.data pipelines;
- `models/`: networks, losses and one GANModel per family, with its step per backend
  (`models/steps/`) and its checkpoints;
- `scoring/`: InceptionV3 features, FID and MiFID;
- `inference/`: SavedModel export, translation to JPEGs or Kaggle's zip, the submission;
- `training/`: the job, its callbacks, the plan of a full run and its XLA:TPU compile.

Beside them: `config.py` (every option, documented once; imports nothing of monet_tf),
`config_check.py` (one check of a resolved config, reading the models' vocabularies), `kaggle.py`
(the offline bundle), `cli.py` (the `monet-tf` command) and `notebook.py` (what notebooks/ call:
training streamed into a cell, a run's outputs shown inline).
"""

import sys

__version__ = "0.1.0"

if sys.argv[:1] == ["-m"]:
    # `python -m monet_tf` (or a module of it): runpy imports this package, and the module's own
    # package (which may load TensorFlow), before the module runs; quieten the console here, first.
    from monet_tf.runtime.commandline import prepare

    prepare(backend=None)
