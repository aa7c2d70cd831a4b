"""The model families: Keras networks (`generators`, `critics`), losses, and one GANModel per
family (`cyclegan`, `cut`, `dcgan`; `families` builds them by model.kind) that owns its step,
run per backend by `steps/`. `checkpoints` keeps a model's state (and its run's config.json) on
disk; `precision_probe` times the generators' layers for `auto` precision on a CPU.

May import runtime/ (tf_strategy's XLA rule) and monet_tf.config; no data: data flows in here.
Everything here but the TensorFlow step (`steps/tf_step`, `steps/replica_rng`) imports without
TensorFlow, so the models and the JAX step run on a machine with only JAX and Keras.
"""

from monet_tf.config import GENERATORS, generator_multiple
from monet_tf.models import losses
from monet_tf.models.critics import CRITICS, build_critic
from monet_tf.models.cyclegan import METRICS, CycleGAN, build_cyclegan
from monet_tf.models.gan import GANModel, schedule_steps, total_steps
from monet_tf.models.diffaugment import diff_augment
from monet_tf.models.generators import build_generator
from monet_tf.models.image_pool import ImagePool
from monet_tf.models.layers import ReflectionPadding2D, instance_norm
from monet_tf.models.schedules import LinearDecay

__all__ = [
    "CRITICS", "GENERATORS", "METRICS", "CycleGAN", "GANModel", "ImagePool", "LinearDecay",
    "ReflectionPadding2D", "ReplicaSeedGenerator", "build_critic", "build_cyclegan",
    "build_generator", "diff_augment", "generator_multiple", "instance_norm", "losses",
    "schedule_steps", "total_steps",
]


def __getattr__(name):
    if name == "ReplicaSeedGenerator":  # TensorFlow only: imported when asked for.
        from monet_tf.models.steps.replica_rng import ReplicaSeedGenerator

        return ReplicaSeedGenerator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
