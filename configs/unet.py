"""Experiment: U-Net generator (pix2pix style, as in many Kaggle notebooks) instead of ResNet-9.

Compare with kaggle_tpu.py, which differs only in the generator.
"""

import pathlib
import runpy

_KAGGLE_TPU = pathlib.Path(__file__).with_name("kaggle_tpu.py")


def get_config():
    c = runpy.run_path(str(_KAGGLE_TPU))["get_config"]()
    c.model.generator = "unet_256"
    c.model.dropout = 0.5
    return c
