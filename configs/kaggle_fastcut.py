"""FastCUT for a Kaggle TPU (or T4 x2 with --strategy=gpu) notebook: resnet9.py's recipe (the
ResNet-9 Kaggle TPU recipe: PatchNCE reads a ResNet's layers), FastCUT's model.

    python run_train.py --strategy=tpu --config=configs/kaggle_fastcut.py

As kaggle_cut.py, without the identity NCE (lambda_NCE 10, flip equivariance): the step costs
under a third of CycleGAN's (0.57 vs 1.88 TFLOP per pair at 256 px; 3.54x the pairs/s in
bench/train_step.py --model=fastcut on a CPU); XLA:TPU counts 0.61 vs 1.95 TFLOP per pair on a
v5e-8 (bench/tpu_sizing.py), the figure the plan uses.
"""

import pathlib
import runpy

_RESNET9 = pathlib.Path(__file__).with_name("resnet9.py")


def get_config():
    c = runpy.run_path(str(_RESNET9))["get_config"]()
    c.model.kind = "fastcut"
    c.estimate.flops_per_pair = 6.12e11  # XLA:TPU's count on a v5e-8 (bench/tpu_sizing.py).
    return c
