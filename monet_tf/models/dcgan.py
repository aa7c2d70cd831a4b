"""DCGAN (Radford, Metz, Chintala, ICLR 2016): noise -> painting, trained on the paintings alone.

The baseline that "generate from noise" notebooks for this competition start from, here so that
its MiFID can be put beside the translators' on the same scorer. noise_to_monet is the paper's
generator, a projection of the noise to 4x4xwidth, then stride-2 transposed convolutions with
ReLU, doubling the side and halving the channels up to the image size, and a tanh; with pixel
norm in place of batch norm (build_noise_generator says why).
It never sees a photo: the (photo, monet) batches of the shared training loop bring a placeholder
for the photos (data.train_dataset(photos=False)) and only the paintings are used.
This module imports without TensorFlow.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from monet_tf.models import losses
from monet_tf.models.diffaugment import diff_augment, parse_policy
from monet_tf.models.gan import (
    CRITIC_LOSS, GENERATOR_LOSS, GANModel, adam_optimizers, check_batch, patch_critic,
    resolve_jit, step_rng,
)
from monet_tf.models.steps import static_batch
from monet_tf.models.layers import Initializers, full_precision_output

METRICS = ("monet_gen_loss", "gen_total_loss", "monet_critic_loss")
START = 4  # The side of the projected noise.


def fixed_noise(count: int, latent_dim: int, seed: int = 0):
    """Standard normal noise [count, latent_dim] float32 from `seed` alone (the same paintings
    whatever the batch size): for predict --count, the submission, the demo, the sample grid and
    MiFID."""
    import numpy as np

    return np.random.default_rng(seed).standard_normal((count, latent_dim), dtype=np.float32)


def check_image_size(size) -> int:
    size = int(size)
    if size < 2 * START or size & (size - 1):
        raise ValueError(f"data.image_size={size}: model.kind=dcgan doubles a {START}x{START} "
                         "start, so the size must be a power of two >= 8 (e.g. 64, 128, 256)")
    return size


@keras.saving.register_keras_serializable(package="monet_tf")
class PixelNorm(keras.layers.Layer):
    """Scales each pixel's feature vector to unit root mean square (Karras et al., 2018):
    stateless, per image and per pixel, computed in full precision (float32 under mixed
    precision)."""

    def __init__(self, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, x):
        y = losses.full(x)
        y = y * ops.rsqrt(ops.mean(ops.square(y), axis=-1, keepdims=True) + self.epsilon)
        return ops.cast(y, x.dtype)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def build_noise_generator(cfg, name: str = "noise_to_monet", seed: int | None = None
                          ) -> keras.Model:
    """noise [B, model.latent_dim] -> tanh float32 paintings [B, S, S, 3], S = data.image_size.

    The paper's layout: the noise projected to 4x4 x model.dcgan_width, then stride-2 4x4
    transposed convolutions, each followed by a norm and ReLU, the channels halving at each
    doubling down to model.ngf, and a last one to RGB with tanh.

    The norm is pixel norm, not the paper's batch norm. Batch norm does train here, on both
    backends (its moving statistics are non-trainable variables that the JAX step carries
    through its StatelessScope, and with synchronized=True under tf.distribute), but the exported
    generator runs on those moving statistics, and they describe another network: they start at
    (0, 1) while the layers' outputs have a variance near 0.01 at this init, so for the first
    tens of steps every exported painting is flat grey (pixel std 0.6 of 255 after 3 steps,
    measured), and later they still average over the last ~10 generators. The MiFID scores and
    sample grids, which run the generator in inference mode, would judge a different network
    from the one training, and each image in training would depend on the others in its batch
    (on each replica's few, unless synchronized). Pixel norm keeps what batch norm was there
    for, each layer's activations at a fixed scale so that the generator starts learning, with
    no state: the same network in training and in inference, on any number of replicas.
    """
    size = check_image_size(cfg.data.image_size)
    latent = int(cfg.model.latent_dim)
    width, floor = int(cfg.model.dcgan_width), int(cfg.model.ngf)
    if latent < 1 or width < 1 or floor < 1:
        raise ValueError(f"model.latent_dim={latent}, model.dcgan_width={width} and "
                         f"model.ngf={floor} must be positive")
    init = Initializers(seed)

    def norm_relu(x, tag):
        return layers.ReLU(name=f"{tag}_relu")(PixelNorm(name=f"{tag}_norm")(x))

    noise = keras.Input((latent,), name="noise")
    x = layers.Dense(START * START * width, kernel_initializer=init(), name="project")(noise)
    x = norm_relu(layers.Reshape((START, START, width), name="start")(x), "start")
    side, channels, n = START, width, 0
    while side * 2 < size:
        side, channels, n = side * 2, max(channels // 2, floor), n + 1
        x = layers.Conv2DTranspose(channels, 4, 2, padding="same", kernel_initializer=init(),
                                   name=f"up_{n}")(x)
        x = norm_relu(x, f"up_{n}")
    x = layers.Conv2DTranspose(3, 4, 2, padding="same", kernel_initializer=init(),
                               name="to_rgb")(x)
    return keras.Model(noise, full_precision_output("tanh", "painting")(x), name=name)


class DCGAN(GANModel):
    """Paintings from noise: noise_to_monet and monet_critic.

    The critic is the translators' PatchGAN (models/critics.py) with model.critic_layers deep
    enough that each logit sees the whole painting (5 layers: a 286 px window at 256 px), which
    is what the DCGAN discriminator is, a stack of stride-2 convolutions and LeakyReLU, with the
    same options (spectral norm, instance noise) as the other families. It keeps instance norm
    rather than the paper's batch norm: real and fake images then never share statistics, so
    the critic cannot tell a batch of fakes by its batch statistics.
    """

    NETWORKS = ("noise_to_monet", "monet_critic")
    GENERATORS = ("noise_to_monet",)
    METRICS = METRICS
    LOSS_GROUPS = ((GENERATOR_LOSS, ("noise_to_monet",)), (CRITIC_LOSS, ("monet_critic",)))

    def __init__(self, noise_to_monet: keras.Model, monet_critic: keras.Model, seed: int = 0,
                 **kwargs):
        super().__init__(**kwargs)
        self.noise_to_monet = noise_to_monet
        self.monet_critic = monet_critic
        self.latent_dim = int(noise_to_monet.input_shape[-1])
        # Noise and DiffAugment; per replica under tf.distribute (each draws its own noise).
        self.rng = step_rng(seed, name="train_step_rng")
        self._make_trackers()
        self.built = True

    def call(self, noise, training=False):
        return self.noise_to_monet(noise, training=training)

    def compile(
        self,
        noise_to_monet_optimizer: keras.optimizers.Optimizer,
        monet_critic_optimizer: keras.optimizers.Optimizer,
        gan_loss: str = "bce",
        diffaugment: str = "",
        steps_per_execution: int = 1,
        jit_compile: bool = True,
        loss_scaling: bool | None = None,
    ):
        """Optimizers (generator, critic) and the GAN loss (bce: the paper's, non-saturating)."""
        self.gan_loss = losses.check_gan_loss(gan_loss)
        self.diffaugment = parse_policy(diffaugment)
        optimizers = [noise_to_monet_optimizer, monet_critic_optimizer]
        self._compile_optimizers(dict(zip(self.NETWORKS, optimizers)), loss_scaling,
                                 steps_per_execution, jit_compile)

    def compute_losses(self, photo, monet, global_batch: int) -> dict:
        """Both losses on this replica's paintings and as many fakes; `photo` is ignored.

        Returns the METRICS plus `critic_total_loss`, each its share of the global-batch mean.
        """
        del photo
        monet = losses.full(monet)
        batch = static_batch(monet)
        mean = lambda per_example: losses.global_mean(per_example, global_batch)  # noqa: E731
        noise = keras.random.normal((batch, self.latent_dim), seed=self.rng)
        fake = self.noise_to_monet(noise, training=True)
        images = ops.concatenate([monet, fake])
        if self.diffaugment:  # 300 paintings: the critic would memorise them unaugmented.
            images = diff_augment(images, self.diffaugment, seed=self.rng)
        # One critic pass for both losses: each is differentiated only for its own network.
        logits = self.monet_critic(images, training=True)
        real_logits, fake_logits = logits[:batch], logits[batch:]
        terms = {"monet_gen_loss": mean(losses.generator_loss(self.gan_loss, fake_logits))}
        terms["gen_total_loss"] = terms["monet_gen_loss"]
        terms["monet_critic_loss"] = mean(losses.critic_loss(self.gan_loss, real_logits,
                                                             fake_logits))
        terms["critic_total_loss"] = terms["monet_critic_loss"]
        return terms


def build_dcgan(cfg, steps_per_epoch: int, global_batch_size: int,
                jit_compile: bool | None = None, replicas: int | None = None) -> DCGAN:
    """The DCGAN from cfg: noise_to_monet, monet_critic, two Adams, compiled and built.

    The same contract as build_cyclegan: every variable exists when it returns.
    """
    check_batch(steps_per_epoch, global_batch_size, replicas)
    seed = int(cfg.seed)
    model = DCGAN(
        build_noise_generator(cfg, "noise_to_monet", seed * 4),
        patch_critic(cfg, "monet_critic", seed * 4 + 2),
        seed=seed,
        name="dcgan",
    )
    model.compile(
        *adam_optimizers(cfg, steps_per_epoch, DCGAN.NETWORKS).values(),
        gan_loss=cfg.loss.gan,
        diffaugment=cfg.loss.diffaugment,
        steps_per_execution=cfg.train.steps_per_execution,
        jit_compile=resolve_jit(cfg, jit_compile),
    )
    model.global_batch_size = int(global_batch_size)
    return model
