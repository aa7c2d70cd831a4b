"""FastCUT on one GPU: CUT without the identity NCE, lambda_NCE 10 and flip equivariance.

    python run_train.py --strategy=gpu --config=configs/fastcut.py

The reference's CUT_mode=FastCUT: the cheapest member of the family (one generator pass per
photo, no painting through the generator), for a first look at a dataset or a tight budget.
The settings come from model.kind (loss.nce_* "auto"); this file only picks the kind.
"""

import pathlib
import runpy

_GPU = pathlib.Path(__file__).with_name("gpu.py")


def get_config():
    c = runpy.run_path(str(_GPU))["get_config"]()
    c.model.kind = "fastcut"
    c.model.generator = "resnet_9blocks"  # gpu.py's U-Net cannot: PatchNCE reads a ResNet's layers.
    c.model.dropout = 0.0
    return c
