"""Experiment: hinge GAN loss instead of LSGAN, everything else as kaggle_tpu.py."""

import pathlib
import runpy

_KAGGLE_TPU = pathlib.Path(__file__).with_name("kaggle_tpu.py")


def get_config():
    c = runpy.run_path(str(_KAGGLE_TPU))["get_config"]()
    c.loss.gan = "hinge"
    return c
