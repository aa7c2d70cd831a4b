"""Demo: a small CycleGAN on the bundled sample, on CPU, in a few minutes on 2 cores.

It shows the whole job (checkpoints, grids, curves, export, demo images), not a good painter:
for that use kaggle_tpu.py or gpu.py on the full competition data.
"""

from monet_tf.config import base_config


def get_config():
    c = base_config()
    c.data.image_size = 128
    c.data.shuffle_buffer = 256
    c.data.heldout_fraction = 0.1
    c.model.generator = "resnet_6blocks"
    c.model.ngf = 32
    c.model.ndf = 32
    c.loss.diffaugment = "color,translation,cutout"
    c.train.epochs = 4
    c.train.decay_epochs = 2
    c.train.mixed_precision = "float32"
    return c
