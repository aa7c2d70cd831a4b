"""Demo: a small FastCUT on the bundled sample, on CPU, in a few minutes on 2 cores.

It shows the whole job (checkpoints, grids, curves, export, demo images), not a good painter:
for that use kaggle_tpu.py or gpu.py on the full competition data. FastCUT (Park et al. 2020:
one generator, one critic, PatchNCE instead of a cycle) because the recipe study at 128 px on a
2-core CPU (docs/study.md) found it far ahead for the same CPU time: a third of CycleGAN's step,
so three times the steps, and the best quality card of every recipe tried (3.6 against 5.3 to 5.9
after 20 CPU-minutes). ResNet-6 at ngf 32 and a PatchGAN of ndf 64, as the study trained it.
"""

from monet_tf.config import base_config


def get_config():
    c = base_config()
    c.data.image_size = 128
    c.data.shuffle_buffer = 256
    c.data.heldout_fraction = 0.1
    c.model.kind = "fastcut"
    c.model.generator = "resnet_6blocks"
    c.model.ngf = 32
    c.model.ndf = 64
    c.loss.diffaugment = "color,translation,cutout"
    c.train.epochs = 12
    c.train.decay_epochs = 6
    c.train.mixed_precision = "float32"
    return c
