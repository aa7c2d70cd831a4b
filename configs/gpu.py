"""One GPU (e.g. a Kaggle T4 or a 16 GB card): the CycleGAN paper's recipe, precision by the GPU."""

from monet_tf.config import base_config


def get_config():
    c = base_config()
    c.data.image_size = 256
    c.data.heldout_fraction = 0.0  # Train on every photo, as a submission translates them all.
    c.model.generator = "resnet_9blocks"
    c.loss.diffaugment = "color,translation,cutout"
    c.train.batch_size = 1
    c.train.epochs = 15
    c.train.decay_epochs = 15
    c.train.steps_per_execution = 8
    c.train.mixed_precision = "auto"  # bfloat16 from compute capability 8.0, float16 on 7.x
    c.eval.every = 5
    c.eval.num_images = 1000
    return c
