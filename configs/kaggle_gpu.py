"""The recipe for a Kaggle GPU T4 x2 notebook, sized to finish inside its 5-hour limit.

    python run_train.py --strategy=gpu --config=configs/kaggle_gpu.py

TensorFlow, MirroredStrategy over the two T4s (XLA stays off under Mirrored), float16 with
dynamic loss scaling (a T4 is compute capability 7.5: no bfloat16). 4 photos per GPU, a global
batch of 8, 15,000 steps as in the TPU recipe (half constant, half decaying): a quarter of its
pairs, because a T4 pair of GPUs is about ten times slower than a v5e-8. MiFID on 1,000 photos
every 5 epochs (4,395 steps), and the best generator is submitted.

The arithmetic (assumed, not measured: no GPU was reachable where this was written; the dry run
and the run itself print the plan):
- a training pair costs about 1.9 TFLOP (see configs/kaggle_tpu.py);
- a T4 peaks at 65 float16 TFLOP/s; at about 15% of that, 5 pairs/s per GPU, 10 for both;
- 15,000 steps x 8 = 120,000 pairs = 3h20m, plus a few minutes of compiles and three scores;
- export about 1 minute; the 7,038 photos at an assumed 40 images/s about 3 minutes.
time_budget 4h15m stops training cleanly if the GPUs are slower than assumed, keeping 45
minutes for export, translation and the zip.
"""

import pathlib
import runpy

_KAGGLE_TPU = pathlib.Path(__file__).with_name("kaggle_tpu.py")


def get_config():
    """kaggle_tpu.py's recipe (ResNet-9, 256 px, DiffAugment, 15,000 steps, the budget, the
    submission) with what differs on two T4s."""
    c = runpy.run_path(str(_KAGGLE_TPU))["get_config"]()
    c.train.steps_per_execution = 8
    c.train.mixed_precision = "auto"  # mixed_float16 with loss scaling on a T4
    c.train.checkpoint_every = 1
    c.train.sample_every = 1
    c.eval.every = 5
    c.eval.batch_size = 32
    c.estimate.accelerator = ""  # Two T4s: the assumed throughput below, not a TPU's peak.
    c.estimate.devices = 2
    c.estimate.pairs_per_second = 10.0
    c.estimate.images_per_second = 40.0
    return c
