"""Keras networks, losses and the CycleGAN model (no data imports: data flows into here)."""

from monet_tf.models import losses
from monet_tf.models.critics import CRITICS, build_critic
from monet_tf.models.cyclegan import METRICS, CycleGAN, build_cyclegan
from monet_tf.models.diffaugment import diff_augment
from monet_tf.models.generators import GENERATORS, build_generator, generator_multiple
from monet_tf.models.image_pool import ImagePool, ReplicaSeedGenerator
from monet_tf.models.layers import ReflectionPadding2D, instance_norm
from monet_tf.models.schedules import LinearDecay

__all__ = [
    "CRITICS", "GENERATORS", "METRICS", "CycleGAN", "ImagePool", "LinearDecay",
    "ReflectionPadding2D", "ReplicaSeedGenerator", "build_critic", "build_cyclegan",
    "build_generator", "diff_augment", "generator_multiple", "instance_norm", "losses",
]
