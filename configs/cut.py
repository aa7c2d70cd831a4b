"""CUT (Park et al., ECCV 2020) on one GPU: the reference's recipe, one-way photo -> Monet.

    python run_train.py --strategy=gpu --config=configs/cut.py

One ResNet-9 generator and one PatchGAN critic (LSGAN) instead of CycleGAN's two of each; the
content is kept by PatchNCE on five encoder layers (256 patches each, tau 0.07, lambda_NCE 1)
plus the identity NCE on real paintings. The reference trains batch 1 with Adam 2e-4
(beta 0.5, 0.999), constant then linearly decaying; DiffAugment is ours, for 300 paintings.
Same schedule as gpu.py, so the two compare step for step; CUT's step costs about half.
"""

import pathlib
import runpy

_GPU = pathlib.Path(__file__).with_name("gpu.py")


def get_config():
    c = runpy.run_path(str(_GPU))["get_config"]()
    c.model.kind = "cut"
    c.model.generator = "resnet_9blocks"  # gpu.py's U-Net cannot: PatchNCE reads a ResNet's layers.
    c.model.dropout = 0.0
    return c
