"""CycleGAN as one keras.Model: two generators, two critics, and the loss maths of the step.

The step follows pytorch-CycleGAN (Zhu et al., 2017) and is written for TPU: static shapes, state in
variables (image pools, RNG), losses in full precision (float32 under mixed precision) averaged
over the global batch, XLA-compilable.
`compute_losses` is the whole algorithm in keras.ops, shared by both backends; only the gradient
plumbing differs, in `steps/tf_step` (GradientTape, tf.distribute) and `steps/jax_step` (one
stateless, jitted step). This module imports without TensorFlow.
"""

from __future__ import annotations

import keras
from keras import ops

from monet_tf.models import losses
from monet_tf.models.diffaugment import diff_augment, parse_policy
from monet_tf.models.gan import (
    CRITIC_LOSS, GENERATOR_LOSS, GANModel, adam_optimizers, check_batch, patch_critic,
    resolve_jit, step_rng, translator,
)
from monet_tf.models.steps import static_batch
from monet_tf.models.image_pool import ImagePool

METRICS = (
    "monet_gen_loss",
    "photo_gen_loss",
    "cycle_loss",
    "identity_loss",
    "gen_total_loss",
    "monet_critic_loss",
    "photo_critic_loss",
)


class CycleGAN(GANModel):
    """Unpaired photo <-> Monet translation: photo_to_monet, monet_to_photo and their critics.

    Use: construct, compile(four optimizers, loss settings), fit on a dataset of (photo, monet)
    batches. image_size fixes the image pools' shape; pool_size 0 turns the pools off; seed seeds
    the step's RNG (pool draws, DiffAugment).
    """

    NETWORKS = ("photo_to_monet", "monet_to_photo", "monet_critic", "photo_critic")
    GENERATORS = ("photo_to_monet", "monet_to_photo")
    METRICS = METRICS
    LOSS_GROUPS = ((GENERATOR_LOSS, ("photo_to_monet", "monet_to_photo")),
                   (CRITIC_LOSS, ("monet_critic", "photo_critic")))

    def __init__(
        self,
        photo_to_monet: keras.Model,
        monet_to_photo: keras.Model,
        monet_critic: keras.Model,
        photo_critic: keras.Model,
        image_size: int,
        pool_size: int = 50,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.photo_to_monet = photo_to_monet
        self.monet_to_photo = monet_to_photo
        self.monet_critic = monet_critic
        self.photo_critic = photo_critic
        self.image_size = int(image_size)
        shape = (self.image_size, self.image_size, 3)
        self.monet_pool = ImagePool(pool_size, shape, name="monet_pool")
        self.photo_pool = ImagePool(pool_size, shape, name="photo_pool")
        self.rng = step_rng(seed, name="train_step_rng")
        self._make_trackers()
        self.built = True

    def call(self, photos, training=False):
        """Photos -> Monet paintings (so the model can also be called like a translator)."""
        return self.photo_to_monet(photos, training=training)

    def compile(
        self,
        photo_to_monet_optimizer: keras.optimizers.Optimizer,
        monet_to_photo_optimizer: keras.optimizers.Optimizer,
        monet_critic_optimizer: keras.optimizers.Optimizer,
        photo_critic_optimizer: keras.optimizers.Optimizer,
        gan_loss: str = "lsgan",
        cycle_weight: float = 10.0,
        identity_weight: float = 0.5,
        diffaugment: str = "",
        steps_per_execution: int = 1,
        jit_compile: bool = True,
        loss_scaling: bool | None = None,
    ):
        """Optimizers (one per network) and loss settings.

        identity_weight is a fraction of cycle_weight (the paper's 0.5 x lambda). loss_scaling
        (None: on under a mixed_float16 policy; TensorFlow only) scales the generators' and the
        critics' losses dynamically (models/loss_scale.py). The optimizers are built here, so
        their slots exist before the first step (for fit and tf.train.Checkpoint).
        """
        optimizers = [photo_to_monet_optimizer, monet_to_photo_optimizer,
                      monet_critic_optimizer, photo_critic_optimizer]
        self.gan_loss = losses.check_gan_loss(gan_loss)
        self.cycle_weight = float(cycle_weight)
        self.identity_weight = float(identity_weight)
        self.diffaugment = parse_policy(diffaugment)
        self._compile_optimizers(dict(zip(self.NETWORKS, optimizers)), loss_scaling,
                                 steps_per_execution, jit_compile)

    def _critic(self, critic, images):
        if self.diffaugment:
            images = diff_augment(images, self.diffaugment, seed=self.rng)
        return critic(images, training=True)

    def compute_losses(self, photo, monet, global_batch: int) -> dict:
        """Every loss of one step on this replica's batch, as its share of the global-batch mean.

        Returns the METRICS plus `critic_total_loss`. Updates the image pools and draws from
        self.rng (pool swaps, DiffAugment): on JAX that happens inside a StatelessScope.
        """
        photo, monet = losses.full(photo), losses.full(monet)
        batch = static_batch(photo)
        mean = lambda per_example: losses.global_mean(per_example, global_batch)  # noqa: E731
        use_identity = self.identity_weight > 0.0
        use_pool = self.monet_pool.pool_size > 0

        # Batched calls: one generator pass per (network, input availability), not six.
        inputs = ops.concatenate([photo, monet]) if use_identity else photo
        out = self.photo_to_monet(inputs, training=True)
        fake_monet = out[:batch]
        inputs = [fake_monet, monet, photo] if use_identity else [fake_monet, monet]
        out_photo = self.monet_to_photo(ops.concatenate(inputs), training=True)
        cycled_photo, fake_photo = out_photo[:batch], out_photo[batch : 2 * batch]
        cycled_monet = self.photo_to_monet(fake_photo, training=True)

        def critic_terms(critic, pool, real, fake):
            """Logits of real, (pooled) fake for the critic, and fake for the generator."""
            if use_pool:
                # Two calls, not one on [real, pooled, fake]: each backward pass then covers
                # only the images its loss uses (10% fewer FLOPs per step).
                pooled = ops.stop_gradient(pool.query(ops.stop_gradient(fake), seed=self.rng))
                logits = self._critic(critic, ops.concatenate([real, pooled]))
                return logits[:batch], logits[batch:], self._critic(critic, fake)
            # Without a pool the same fake logits serve both losses: each loss is
            # differentiated only with respect to its own networks' variables.
            logits = self._critic(critic, ops.concatenate([real, fake]))
            return logits[:batch], logits[batch:], logits[batch:]

        m_real, m_pooled, m_fake = critic_terms(self.monet_critic, self.monet_pool, monet, fake_monet)
        p_real, p_pooled, p_fake = critic_terms(self.photo_critic, self.photo_pool, photo, fake_photo)

        terms = {
            "monet_gen_loss": mean(losses.generator_loss(self.gan_loss, m_fake)),
            "photo_gen_loss": mean(losses.generator_loss(self.gan_loss, p_fake)),
            "cycle_loss": mean(losses.l1(photo, cycled_photo) + losses.l1(monet, cycled_monet)),
        }
        if use_identity:
            same_monet = out[batch:]  # photo_to_monet fed a painting should leave it alone
            same_photo = out_photo[2 * batch :]
            terms["identity_loss"] = mean(losses.l1(monet, same_monet) + losses.l1(photo, same_photo))
        else:
            terms["identity_loss"] = ops.zeros((), losses.full_precision())
        terms["gen_total_loss"] = (
            terms["monet_gen_loss"]
            + terms["photo_gen_loss"]
            + self.cycle_weight * terms["cycle_loss"]
            + self.identity_weight * self.cycle_weight * terms["identity_loss"]
        )
        terms["monet_critic_loss"] = mean(losses.critic_loss(self.gan_loss, m_real, m_pooled))
        terms["photo_critic_loss"] = mean(losses.critic_loss(self.gan_loss, p_real, p_pooled))
        terms["critic_total_loss"] = terms["monet_critic_loss"] + terms["photo_critic_loss"]
        return terms


def build_cyclegan(cfg, steps_per_epoch: int, global_batch_size: int,
                   jit_compile: bool | None = None, replicas: int | None = None) -> CycleGAN:
    """The four networks, four Adam optimizers on the LinearDecay schedule, compiled and built.

    Call under strategy.scope() on TensorFlow (on JAX, after the runtime set the distribution).
    Reads cfg.model, cfg.loss, cfg.optim, cfg.train, cfg.data.image_size and cfg.seed.
    jit_compile None: cfg.train.jit_compile as the backend resolves it. replicas: what the
    global batch must be a multiple of (None: TF's replicas in sync, or 1 on JAX). After it
    returns, every variable (weights, optimizer slots and iterations, pools, RNG, metric
    accumulators) exists, so a checkpoint can be restored before fit().
    """
    check_batch(steps_per_epoch, global_batch_size, replicas)
    seed = int(cfg.seed)
    model = CycleGAN(
        translator(cfg, "photo_to_monet", seed * 4),
        translator(cfg, "monet_to_photo", seed * 4 + 1),
        patch_critic(cfg, "monet_critic", seed * 4 + 2),
        patch_critic(cfg, "photo_critic", seed * 4 + 3),
        image_size=int(cfg.data.image_size),
        pool_size=cfg.loss.pool_size,
        seed=seed,
        name="cyclegan",
    )
    optimizers = adam_optimizers(cfg, steps_per_epoch, CycleGAN.NETWORKS)
    model.compile(
        *optimizers.values(),
        gan_loss=cfg.loss.gan,
        cycle_weight=cfg.loss.cycle_weight,
        identity_weight=cfg.loss.identity_weight,
        diffaugment=cfg.loss.diffaugment,
        steps_per_execution=cfg.train.steps_per_execution,
        jit_compile=resolve_jit(cfg, jit_compile),
    )
    model.global_batch_size = int(global_batch_size)
    return model
