"""The recipe for a Kaggle GPU T4 x2 notebook, sized to finish inside its 5-hour limit.

    python run_train.py --strategy=gpu --config=configs/kaggle_gpu.py

kaggle_tpu.py's U-Net CycleGAN (that file says which evidence chose it) on two T4s: TensorFlow,
MirroredStrategy (XLA stays off under Mirrored), float16 with dynamic loss scaling (a T4 is
compute capability 7.5: no bfloat16). 4 photos per GPU, a global batch of 8, and 60,000 steps
(half constant, half decaying): the 480,000 pairs of the TPU recipe, the count behind its 37.4
MiFID, at a quarter of its batch. Scores on 1,000 photos every 10 epochs (8,790 steps), and the
best generator is submitted.

The arithmetic (assumed, not measured: no GPU was reachable where this was written; the dry run
and the run itself print the plan):
- a training pair costs 0.34 TFLOP (XLA:TPU's count, configs/kaggle_tpu.py);
- a T4 peaks at 65 float16 TFLOP/s; at about 15% of that, 28 pairs/s per GPU, 57 for both;
- 60,000 steps x 8 = 480,000 pairs = 2h20m, plus a few minutes of compiles and six scores;
- export about 1 minute; the 7,038 photos at an assumed 40 images/s about 3 minutes.
time_budget 4h15m stops training cleanly (and submits the best so far) if the GPUs are slower
than assumed, keeping 45 minutes for export, translation and the zip.
"""

import pathlib
import runpy

_KAGGLE_TPU = pathlib.Path(__file__).with_name("kaggle_tpu.py")


def get_config():
    """kaggle_tpu.py's recipe (U-Net, 256 px, DiffAugment, the budget, the submission) with
    what differs on two T4s."""
    c = runpy.run_path(str(_KAGGLE_TPU))["get_config"]()
    c.train.steps = 60_000
    c.train.steps_per_execution = 8
    c.train.mixed_precision = "auto"  # mixed_float16 with loss scaling on a T4
    c.train.checkpoint_every = 1
    c.train.sample_every = 1
    c.eval.every = 10
    c.eval.batch_size = 32
    c.estimate.accelerator = ""  # Two T4s: the assumed throughput below, not a TPU's peak.
    c.estimate.devices = 2
    c.estimate.pairs_per_second = 57.0
    c.estimate.images_per_second = 40.0
    return c
