"""The DCGAN baseline (configs/dcgan.py) on a Kaggle TPU notebook, as resnet9.py runs CycleGAN.

    python run_train.py --strategy=tpu --config=configs/kaggle_dcgan.py

A global batch of 32 (4 per chip of a v5e-8), 10,000 steps at a constant learning rate. An epoch
is set to 256 steps (27 passes over the 300 paintings), a multiple of the 32 steps per compiled
call, so that MiFID (every 5 epochs, 1,280 steps), samples and checkpoints come at useful
intervals rather than every 9 steps. The submission generates 7,000 paintings from noise into
/kaggle/working/images.zip.

The arithmetic: XLA:TPU counts 35.7 GFLOP per painting a step on a v5e-8 (bench/tpu_sizing.py;
noise_to_monet, about 1 GFLOP forward, and the 5-layer critic, about 4 GFLOP forward, on a real
and a fake, with their backward passes), 55 times less than a CycleGAN pair; the 320,000
paintings of the run are minutes of TPU time, so compiles, the scores and the host's input
pipeline dominate, and the plan's rate (30% of the peak) is an upper bound.
"""

import pathlib
import runpy

_RESNET9 = pathlib.Path(__file__).with_name("resnet9.py")
_DCGAN = pathlib.Path(__file__).with_name("dcgan.py")


def get_config():
    c = runpy.run_path(str(_RESNET9))["get_config"]()
    dcgan = runpy.run_path(str(_DCGAN))["get_config"]()
    c.model = dcgan.model
    c.loss = dcgan.loss
    c.optim = dcgan.optim
    c.data.steps_per_epoch = 256
    c.train.steps = 10_000
    c.train.decay_fraction = 0.0
    c.eval.every = 5
    c.submission.count = 7000
    c.estimate.flops_per_pair = 3.57e10  # per painting: XLA:TPU's count on a v5e-8
    return c
