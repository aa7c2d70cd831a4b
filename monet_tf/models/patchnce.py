"""PatchNCE, the contrastive loss of CUT / FastCUT (Park et al., ECCV 2020), in keras.ops only.

A patch of the translated image (the query) should match the patch at the same location of the
source image (the positive) and not the other sampled patches of that same image (the
negatives). Negatives never come from another image of the batch (CUT's default,
nce_includes_all_negatives_from_minibatch=False), so each image's loss is independent of the
rest of the batch and of how the global batch is split over replicas.
"""

from __future__ import annotations

import keras
from keras import ops

from monet_tf.models.layers import Initializers
from monet_tf.models.losses import full

# The reference overwrites self-similarities with -10 before dividing by the temperature, so
# they stay in the softmax with weight exp(-10 / tau), i.e. practically zero.
MASKED_SIMILARITY = -10.0


def l2_normalize(x, axis=-1, epsilon=1e-7):
    """x / (||x|| + epsilon), the reference's Normalize; the norm is floored so zero rows get a
    finite gradient instead of sqrt(0)'s infinite one."""
    squared = ops.sum(ops.square(x), axis=axis, keepdims=True)
    norm = ops.sqrt(ops.maximum(squared, epsilon * epsilon))
    return x / (norm + epsilon)


def patch_nce_loss(query, positive, temperature=0.07):
    """Per-patch InfoNCE loss [B, N] of L2-normalised patch features [B, N, C].

    For patch i of image b the logits are q_i.k_i and q_i.k_j (j != i, same image) over the
    temperature; the loss is their cross-entropy with the positive as the class. Computed in
    full precision (float32 under mixed precision). The positive is held constant (no gradient), as the reference detaches feat_k.
    The caller averages over patches and the global batch.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    query = full(query)
    positive = ops.stop_gradient(full(positive))
    num_patches = query.shape[1]
    positive_logit = ops.sum(query * positive, axis=-1, keepdims=True)  # [B, N, 1]
    similarities = ops.einsum("bnc,bmc->bnm", query, positive)  # [B, N, N]
    self_pair = ops.eye(num_patches, dtype="bool")[None]
    negative_logits = ops.where(self_pair, MASKED_SIMILARITY, similarities)
    logits = ops.concatenate([positive_logit, negative_logits], axis=-1) / temperature
    return ops.logsumexp(logits, axis=-1) - logits[..., 0]


def sample_locations(seed, height, width, num_patches):
    """int32 [min(num_patches, H*W)] distinct random indices into the flattened H*W grid.

    seed: an int or a keras.random.SeedGenerator. Draw once per layer from the source features
    and reuse the indices for the query, so query and positive are the same locations; every
    image of the batch uses the same locations, as in the reference. When the grid has at most
    num_patches locations, all of them are returned in order.
    """
    locations = int(height) * int(width)
    if locations <= num_patches:
        return ops.arange(locations, dtype="int32")
    # top_k of uniform noise is a random subset without replacement that XLA and TPUs compile.
    scores = keras.random.uniform((locations,), seed=seed)
    _, indices = ops.top_k(scores, int(num_patches), sorted=False)
    return ops.cast(indices, "int32")


def gather_patches(features, indices):
    """[B, H, W, C] features at flattened locations `indices` [N] -> [B, N, C]."""
    batch, height, width, channels = ops.shape(features)
    flat = ops.reshape(features, (batch, height * width, channels))
    return ops.take(flat, indices, axis=1)


class ProjectionHead(keras.layers.Layer):
    """The reference's PatchSampleF MLP for one encoder layer: Dense -> ReLU -> Dense, then L2
    normalisation over channels (in full precision).

    Weights are created on the first call from the input's channel count, as the reference
    builds its MLPs on the first batch; kernels are N(0, 0.02) (init_type normal, init_gain
    0.02) and biases zero. An int seed draws the kernels with NumPy, so TensorFlow and JAX start
    from the same weights; use one head (and one seed) per encoder layer.
    """

    def __init__(self, units: int = 256, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.seed = seed
        init = Initializers(seed)
        self.hidden = keras.layers.Dense(
            self.units, activation="relu", kernel_initializer=init(), dtype=self.dtype_policy,
            name="hidden",
        )
        self.projection = keras.layers.Dense(
            self.units, kernel_initializer=init(), dtype=self.dtype_policy, name="projection"
        )

    def build(self, input_shape):
        self.hidden.build(input_shape)
        self.projection.build((*input_shape[:-1], self.units))
        self.built = True

    def call(self, patches):
        x = self.projection(self.hidden(patches))
        return l2_normalize(full(x))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "seed": self.seed}
