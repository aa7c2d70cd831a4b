"""What every model family shares: named networks, one optimizer each, losses by group.

A family (CycleGAN, CUT, DCGAN) is a `GANModel` that declares
- NETWORKS: its trainable networks by attribute name, each with its own optimizer
  (`<name>_optimizer`), in the order checkpoints store them;
- GENERATORS: the networks that are exported (photo_to_monet for the translators);
- METRICS: what `compute_losses` logs each step;
- LOSS_GROUPS: (loss, networks) pairs: each loss is differentiated with respect to its networks
  only (the generator loss trains the generators, the critic loss the critics).
`compute_losses` is the whole algorithm in keras.ops; `steps/tf_step` and `steps/jax_step` run any
family from these declarations. This module imports without TensorFlow.
"""

from __future__ import annotations

import keras

from monet_tf.models.steps.loss_scale import DynamicLossScale

GENERATOR_LOSS, CRITIC_LOSS = "gen_total_loss", "critic_total_loss"


def on_jax() -> bool:
    return keras.backend.backend() == "jax"


def step_rng(seed: int, name: str, shared: bool = False):
    """The step's RNG: per-replica streams under tf.distribute (shared=True: the same stream
    on every replica, for draws that must not depend on the replica, such as CUT's patch
    locations); on JAX, one stream for the one program over the global batch."""
    if on_jax():
        return keras.random.SeedGenerator(seed, name=name)
    from monet_tf.models.steps.replica_rng import ReplicaSeedGenerator

    return ReplicaSeedGenerator(seed, name=name, shared=shared)


def replicas_in_sync() -> int:
    """How many copies of the step share a global batch: TF replicas; 1 on JAX, whose step
    sees the whole global batch however many devices it is sharded over."""
    if on_jax():
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


class GANModel(keras.Model):
    """Base of the model families (see the module docstring)."""

    NETWORKS: tuple[str, ...] = ()
    GENERATORS: tuple[str, ...] = ()
    METRICS: tuple[str, ...] = ()
    LOSS_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def _make_trackers(self):
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.METRICS}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def networks(self) -> list[keras.Model]:
        return [getattr(self, name) for name in self.NETWORKS]

    def optimizer_of(self, name: str) -> keras.optimizers.Optimizer:
        return getattr(self, f"{name}_optimizer")

    def loss_scale_of(self, loss: str) -> DynamicLossScale | None:
        return {GENERATOR_LOSS: self.generator_loss_scale,
                CRITIC_LOSS: self.critic_loss_scale}[loss]

    def _compile_optimizers(self, optimizers: dict, loss_scaling: bool | None,
                            steps_per_execution: int, jit_compile: bool) -> None:
        """One plain optimizer per network, built here so their slots exist before the first
        step (for fit and for restoring a checkpoint). loss_scaling (None: on under a
        mixed_float16 policy; TensorFlow only) scales each loss group dynamically."""
        kind = type(self).__name__
        if sorted(optimizers) != sorted(self.NETWORKS):
            raise ValueError(f"{kind}.compile needs one optimizer per network: "
                             f"{', '.join(self.NETWORKS)}")
        if len({id(o) for o in optimizers.values()}) != len(optimizers):
            raise ValueError(f"{kind}.compile needs {len(optimizers)} distinct optimizers, "
                             "one per network")
        if any(isinstance(o, keras.optimizers.LossScaleOptimizer) for o in optimizers.values()):
            raise ValueError(f"{kind}.compile takes plain optimizers: it scales each loss "
                             "itself (loss_scaling)")
        if loss_scaling is None:
            loss_scaling = keras.config.dtype_policy().name == "mixed_float16"
        self.generator_loss_scale = self.critic_loss_scale = None
        if loss_scaling:
            if on_jax():
                raise ValueError("mixed_float16 (loss scaling) is supported on the TensorFlow "
                                 "backend only; on JAX use mixed_bfloat16 or float32")
            self.generator_loss_scale = DynamicLossScale(name="generator_loss_scale")
            self.critic_loss_scale = DynamicLossScale(name="critic_loss_scale")
        ordered = [optimizers[name] for name in self.NETWORKS]
        for name, optimizer in zip(self.NETWORKS, ordered):
            setattr(self, f"{name}_optimizer", optimizer)
            if not optimizer.built:
                optimizer.build(getattr(self, name).trainable_variables)
        # Keras' own optimizer slot: model.optimizer.iterations counts training steps (callbacks,
        # resume). On TensorFlow it holds the first network's optimizer; on JAX, whose trainer
        # carries only `model.optimizer.variables` through the step, a group of all of them.
        keras_optimizer = ordered[0]
        if on_jax():
            from monet_tf.models.steps.jax_step import OptimizerGroup

            keras_optimizer = OptimizerGroup(ordered)
        super().compile(optimizer=keras_optimizer, steps_per_execution=steps_per_execution,
                        jit_compile=jit_compile)

    def compute_losses(self, photo, monet, global_batch: int) -> dict:
        """The METRICS and every LOSS_GROUPS loss of one step on this replica's batch."""
        raise NotImplementedError

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Nothing to build: the families' builders build every network and optimizer before
        fit. Keras (TensorFlow) would otherwise take the first batch of each fit from an
        iterator it throws away, while the first epoch is still writing the decoded-image cache:
        process 0 of two TensorFlow workers then trained on other photos from run to run, so a
        resumed run could not equal an uninterrupted one. And over several workers it cannot
        (keras#20585: strategy.reduce of a (photo, monet) pair fails under
        MultiWorkerMirroredStrategy)."""
        if self.optimizer.built and all(layer.built for layer in self._flatten_layers()):
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def train_step(self, *args):
        """Keras calls train_step(data) on TensorFlow and train_step(state, data) on JAX."""
        if on_jax():
            from monet_tf.models.steps import jax_step

            return jax_step.train_step(self, *args)
        from monet_tf.models.steps import tf_step

        return tf_step.train_step(self, *args)


def resolve_jit(cfg, jit_compile: bool | None) -> bool:
    """jit_compile, or (None) cfg.train.jit_compile as the backend and strategy resolve it."""
    if jit_compile is not None:
        return bool(jit_compile)
    if on_jax():
        return str(cfg.train.jit_compile).lower() != "false"
    import tensorflow as tf

    from monet_tf.runtime.tf_strategy import use_xla

    return use_xla(cfg.train.jit_compile, tf.distribute.get_strategy())


def schedule_steps(cfg, steps_per_epoch: int) -> tuple[int, int]:
    """(constant, decay) learning-rate steps: from train.steps and train.decay_fraction when
    train.steps > 0, else from the epochs."""
    total = int(cfg.train.steps)
    if total > 0:
        fraction = float(cfg.train.decay_fraction)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"train.decay_fraction={fraction} must be in [0, 1]")
        decay = int(round(total * fraction))
        return total - decay, decay
    return cfg.train.epochs * steps_per_epoch, cfg.train.decay_epochs * steps_per_epoch


def total_steps(cfg, steps_per_epoch: int) -> int:
    return sum(schedule_steps(cfg, steps_per_epoch))


def check_batch(steps_per_epoch: int, global_batch_size: int, replicas: int | None) -> None:
    """replicas: what the global batch must be a multiple of (None: TF's replicas in sync, or 1
    on JAX)."""
    replicas = replicas_in_sync() if replicas is None else replicas
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    if global_batch_size < 1 or global_batch_size % replicas:
        raise ValueError(
            f"global_batch_size={global_batch_size} must be a positive multiple of the "
            f"{replicas} replicas"
        )


def adam_optimizers(cfg, steps_per_epoch: int, names) -> dict:
    """One Adam per network, all on the same LinearDecay schedule (cfg.optim, cfg.train)."""
    from monet_tf.models.schedules import LinearDecay

    constant_steps, decay_steps = schedule_steps(cfg, steps_per_epoch)
    schedule = LinearDecay(cfg.optim.lr, constant_steps=constant_steps, decay_steps=decay_steps)
    return {name: keras.optimizers.Adam(schedule, beta_1=cfg.optim.beta_1,
                                        beta_2=cfg.optim.beta_2, epsilon=cfg.optim.epsilon,
                                        name=f"{name}_adam")
            for name in names}


def translator(cfg, name: str, seed: int) -> keras.Model:
    """cfg.model's image-to-image generator at cfg.data.image_size."""
    from monet_tf.config import generator_multiple
    from monet_tf.models.generators import build_generator

    m = cfg.model
    size = int(cfg.data.image_size)
    multiple = generator_multiple(m.generator)
    if size % multiple:
        raise ValueError(
            f"data.image_size={size} must be a multiple of {multiple} for generator {m.generator!r}"
        )
    return build_generator(
        m.generator, ngf=m.ngf, upsample=m.upsample, dropout=m.dropout,
        norm_epsilon=m.norm_epsilon, image_size=size, model_name=name, seed=seed,
        norm=m.instance_norm, reflect_padding=m.reflect_padding,
    )


def patch_critic(cfg, name: str, seed: int) -> keras.Model:
    """cfg.model's critic at cfg.data.image_size."""
    from monet_tf.models.critics import build_critic

    m = cfg.model
    return build_critic(
        m.critic, ndf=m.ndf, n_layers=m.critic_layers, noise=m.critic_noise,
        spectral_norm=m.spectral_norm, norm_epsilon=m.norm_epsilon,
        image_size=int(cfg.data.image_size), model_name=name, seed=seed,
        norm_method=m.instance_norm,
    )
