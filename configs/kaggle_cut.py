"""CUT for a Kaggle TPU (or T4 x2 with --strategy=gpu) notebook: resnet9.py's recipe (the
ResNet-9 Kaggle TPU recipe: PatchNCE reads a ResNet's layers), CUT's model.

    python run_train.py --strategy=tpu --config=configs/kaggle_cut.py

Everything but the model is resnet9.py's (15,000 steps at a global batch of 32, MiFID every
10 epochs, the best generator submitted, the 4h15m budget), so the two compare run for run. A
CUT run reached MiFID 36.9 on this competition. CUT's step costs about half of CycleGAN's
(0.97 vs 1.88 TFLOP per pair at 256 px; 1.94x the pairs/s in bench/train_step.py --model=cut on
a CPU); XLA:TPU counts 0.98 vs 1.95 TFLOP per pair on a v5e-8 (bench/tpu_sizing.py), the
figure the plan uses.
"""

import pathlib
import runpy

_RESNET9 = pathlib.Path(__file__).with_name("resnet9.py")


def get_config():
    c = runpy.run_path(str(_RESNET9))["get_config"]()
    c.model.kind = "cut"
    c.estimate.flops_per_pair = 9.80e11  # XLA:TPU's count on a v5e-8 (bench/tpu_sizing.py).
    return c
