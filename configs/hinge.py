"""Experiment: hinge GAN loss instead of LSGAN, everything else as resnet9.py (the ResNet-9
Kaggle TPU recipe)."""

import pathlib
import runpy

_RESNET9 = pathlib.Path(__file__).with_name("resnet9.py")


def get_config():
    c = runpy.run_path(str(_RESNET9))["get_config"]()
    c.loss.gan = "hinge"
    return c
