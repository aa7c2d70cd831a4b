"""Baseline: a DCGAN that paints from noise, trained on the 300 paintings alone.

    python run_train.py --config=configs/dcgan.py
    python run_train.py --strategy=gpu --config=configs/dcgan.py --config.submission.path=images.zip

What "generate from noise" notebooks for this competition try first, here so that its MiFID can
be put beside the translators' (same data, same scorer): noise_to_monet (Radford et al., 2016)
from 128-d noise straight to 256 px, the non-saturating GAN loss, Adam at 2e-4 with beta_1 0.5
and a constant learning rate, as in the paper. The critic is the PatchGAN with 5 layers, so each
of its logits sees the whole painting (a 286 px window), as a DCGAN discriminator does;
DiffAugment because 300 paintings is a tiny set to train a critic on. An epoch is one pass over
the paintings (18 steps of 16); MiFID scores 1,000 paintings from fixed noise every 50 epochs and
the submission is 7,000 generated paintings:

    python -m monet_tf predict --model=runs/<run>/export/noise_to_monet --count=7000 \
        --output=images.zip
"""

from monet_tf.config import base_config


def get_config():
    c = base_config()
    c.model.kind = "dcgan"
    c.data.image_size = 256
    c.model.latent_dim = 128
    c.model.dcgan_width = 512  # 4x4x512, halving to 64 channels (model.ngf) from 32 px on.
    c.model.ngf = 64
    c.model.ndf = 64
    c.model.critic_layers = 5
    c.loss.gan = "bce"
    c.loss.diffaugment = "color,translation,cutout"
    c.optim.lr = 2e-4
    c.optim.beta_1 = 0.5
    c.train.batch_size = 16
    c.train.steps = 10_000
    c.train.decay_fraction = 0.0
    c.train.steps_per_execution = 6  # Divides the 18 steps of an epoch.
    c.train.checkpoint_every = 25
    c.train.sample_every = 10
    c.eval.every = 50
    c.eval.num_images = 1000
    c.submission.count = 7000
    return c
