"""FastCUT for a Kaggle TPU (or T4 x2 with --strategy=gpu) notebook: kaggle_tpu.py's recipe,
FastCUT's model.

    python run_train.py --strategy=tpu --config=configs/kaggle_fastcut.py

As kaggle_cut.py, without the identity NCE (lambda_NCE 10, flip equivariance): the step costs
about half of CycleGAN's (bench/train_step.py --model=fastcut), so the assumed throughput is
2 x kaggle_tpu's, an assumption until a TPU run replaces it.
"""

import pathlib
import runpy

_KAGGLE_TPU = pathlib.Path(__file__).with_name("kaggle_tpu.py")


def get_config():
    c = runpy.run_path(str(_KAGGLE_TPU))["get_config"]()
    c.model.kind = "fastcut"
    c.estimate.pairs_per_second *= 2.0
    return c
