"""One GPU (e.g. a Kaggle T4 or a 16 GB card): CycleGAN with the U-Net generator, precision by
the GPU.

The CycleGAN paper's schedule (batch 1, 15 epochs at a constant learning rate, 15 decaying) with
the generator the public evidence chose for the Kaggle recipes (configs/kaggle_tpu.py says which:
the U-Net ahead of ResNet-6 and ResNet-9 in every fixed-budget comparison of this competition we
know of, and a fifth of the ResNet-9's FLOPs per pair). The paper's ResNet-9 is one flag away:
--config.model.generator=resnet_9blocks --config.model.dropout=0 (cut.py and fastcut.py, which
build on this file, take it: CUT needs a ResNet).
"""

from monet_tf.config import base_config


def get_config():
    c = base_config()
    c.data.image_size = 256
    c.data.heldout_fraction = 0.0  # Train on every photo, as a submission translates them all.
    c.model.generator = "unet_256"
    c.model.dropout = 0.5
    c.loss.diffaugment = "color,translation,cutout"
    c.train.batch_size = 1
    c.train.epochs = 15
    c.train.decay_epochs = 15
    c.train.steps_per_execution = 8
    c.train.mixed_precision = "auto"  # bfloat16 from compute capability 8.0, float16 on 7.x
    c.eval.every = 5
    c.eval.num_images = 1000
    return c
