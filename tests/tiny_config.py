"""A CycleGAN small enough to train a few steps in seconds, for the end-to-end tests."""

from monet_tf.config import base_config


def get_config():
    c = base_config()
    c.data.image_size = 32
    c.data.shuffle_buffer = 64
    c.data.steps_per_epoch = 3
    c.data.heldout_fraction = 0.1
    c.data.min_image_size = 32
    c.model.generator = "resnet_2blocks"  # two residual blocks: the logic, at half the trace time
    c.loss.nce_layers = "padded_input,down_1,down_2,block_1,block_2"  # cut / fastcut
    c.model.ngf = 8
    c.model.ndf = 8
    c.loss.pool_size = 4
    c.train.epochs = 1
    c.train.decay_epochs = 1
    c.train.num_samples = 2
    c.train.demo_images = 2
    c.train.mixed_precision = "float32"
    return c
