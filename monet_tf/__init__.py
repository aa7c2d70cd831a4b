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
training streamed into a cell, a run's outputs shown inline). `predict.py`, `export.py`, `fid.py`
and `tpu_compile.py` keep `python -m monet_tf.<name>` working under the names it had.
"""

import sys

__version__ = "0.1.0"

# Modules that moved when the package took its folders by role: importing one by its old name
# says where it is now (the four command aliases above are modules of their own).
MOVED = {
    "monet_tf.backend": "monet_tf.runtime.backend",
    "monet_tf.console": "monet_tf.runtime.console",
    "monet_tf.strategy": "monet_tf.runtime.tf_strategy",
    "monet_tf.tpus": "monet_tf.runtime.tpus",
    "monet_tf.jax_compat": "monet_tf.runtime.jax_compat",
    "monet_tf.checkpoints": "monet_tf.models.checkpoints",
    "monet_tf.models.step_tensorflow": "monet_tf.models.steps.tf_step",
    "monet_tf.models.step_jax": "monet_tf.models.steps.jax_step",
    "monet_tf.models.loss_scale": "monet_tf.models.steps.loss_scale",
    "monet_tf.models.replica_rng": "monet_tf.models.steps.replica_rng",
    "monet_tf.inception": "monet_tf.scoring.inception",
    "monet_tf.metrics": "monet_tf.scoring.metrics",
    "monet_tf.fid_callback": "monet_tf.scoring.mifid_callback",
    "monet_tf.submission": "monet_tf.inference.submission",
    "monet_tf.train": "monet_tf.training.job",
    "monet_tf.plan": "monet_tf.training.plan",
    "monet_tf.callbacks": "monet_tf.training.callbacks",
}


class _MovedModules:
    """A meta path finder (all it needs is find_spec; importlib.abc would add ~7 ms to every
    import of monet_tf), asked only after every real finder found nothing."""

    def find_spec(self, name, path=None, target=None):
        if name in MOVED:
            raise ModuleNotFoundError(f"{name} is now {MOVED[name]}: import it from there",
                                      name=name)
        return None


sys.meta_path.append(_MovedModules())

if sys.argv[:1] == ["-m"]:
    # `python -m monet_tf.<tool>`: runpy imports this package, and the tool's own package (which
    # may load TensorFlow), before the tool's module runs; quieten the console here, first.
    from monet_tf.runtime.commandline import prepare

    prepare(backend=None)
