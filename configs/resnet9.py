"""The Kaggle TPU recipe with the CycleGAN paper's ResNet-9 generator instead of the U-Net.

    python run_train.py --strategy=tpu --config=configs/resnet9.py

What kaggle_tpu.py was until the quality card's study (docs/study.md): the public evidence that
chose the U-Net for kaggle_tpu.py is the comparison to run against. hinge.py, kaggle_cut.py,
kaggle_fastcut.py and kaggle_dcgan.py build on this file.

The recipe: a v5e-8 on Keras' JAX backend, 8 chips, 4 photos each, a global batch of 32 (on a
v3-8 with TensorFlow: 8 cores, the same batch); 15,000 steps (half at a constant learning rate,
half decaying), scores on 1,000 photos every 10 epochs (2,190 steps), the best generator
submitted; ResNet-9 at 256 px, bfloat16, 32 steps per compiled call, DiffAugment because 300
paintings is a tiny set. No photo is held out: the submission translates the very photos the
generator trained on.

The arithmetic (the FLOPs are XLA:TPU's own count, `bench/tpu_sizing.py`; the speed is a stated
fraction of the chips' peak, not a measurement: no TPU was reachable where this was written; the
dry run and the run itself print the plan, and the log's step times replace it):
- a training pair costs 1.95 TFLOP in the step XLA:TPU compiles for a v5e-8 (six ResNet-9
  passes of 49.6 GMAC at 256 px, three critic passes per domain, backward at twice the forward,
  DiffAugment and Adam on top);
- a v5e-8 peaks at 8 x 197 bf16 TFLOP/s; at 30% of that (estimate.peak_fraction, README says
  why), 242 pairs/s;
- 15,000 steps x 32 = 480,000 pairs = 33 minutes of steps, plus the compiles (the step takes
  about 6 minutes to compile on a 2-core CPU) and six scores;
- export (a TensorFlow subprocess on the host) about 2 minutes; the 7,038 photos at an assumed
  100 images/s (JPEG encoding on the host bounds it) about 70 seconds.
The step fits a chip's 16 GiB with room to spare (6.4 GiB at 4 pairs per chip). time_budget
4h15m stops training cleanly (saving and exporting) if the TPU is far slower than planned,
keeping 45 minutes for export, translation and the zip.
"""

from monet_tf.config import base_config


def get_config():
    c = base_config()
    c.data.image_size = 256
    c.data.heldout_fraction = 0.0  # All 7,038 photos train every epoch.
    c.model.generator = "resnet_9blocks"
    c.loss.diffaugment = "color,translation,cutout"
    c.train.batch_size = 4
    c.train.steps = 15_000
    c.train.decay_fraction = 0.5
    c.train.steps_per_execution = 32
    c.train.mixed_precision = "auto"  # mixed_bfloat16 on TPU
    c.train.checkpoint_every = 2
    c.train.sample_every = 2
    c.train.time_budget = "4h15m"
    c.eval.every = 10
    c.eval.num_images = 1000
    c.eval.batch_size = 64
    c.submission.path = "auto"  # /kaggle/working/images.zip in a Kaggle notebook
    c.submission.batch_size = 16
    c.estimate.accelerator = "v5e-8"
    c.estimate.flops_per_pair = 1.954e12  # XLA:TPU's count on a v5e-8 (bench/tpu_sizing.py).
    c.estimate.peak_fraction = 0.3
    c.estimate.images_per_second = 100.0
    return c
