"""tests/tiny_config.py as a TPU config: the TPU's own precision (auto: bfloat16), scores on
(so the Inception program is compiled too), per-chip batches of 2 for every program, and
PatchNCE heads as narrow as the networks."""

import pathlib
import runpy

_TINY = pathlib.Path(__file__).with_name("tiny_config.py")


def get_config():
    c = runpy.run_path(str(_TINY))["get_config"]()
    c.train.mixed_precision = "auto"
    c.train.batch_size = 2
    c.model.latent_dim = 16  # dcgan: as tests/test_dcgan.py's tiny DCGAN
    c.model.dcgan_width = 16
    c.loss.nce_patches = 32  # cut / fastcut: PatchNCE as narrow as the networks
    c.loss.nce_units = 16
    c.eval.every = 1
    c.eval.batch_size = 2
    c.submission.batch_size = 2
    return c
