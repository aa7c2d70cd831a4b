"""CUT and FastCUT (Park, Efros, Zhang, Zhu, ECCV 2020): one generator, one critic, PatchNCE.

Instead of a second generator and a cycle, the translation keeps a photo's content by making
each patch of the output's encoder features match the same patch of the photo's features and
not the image's other patches (models/patchnce.py). As in taesungp/contrastive-unpaired-
translation: ResNet generator, PatchGAN critic, LSGAN, 256 patches from each of five encoder
layers, a 2-layer 256-d projection head per layer, temperature 0.07, no image pool.
CUT adds the identity NCE on real paintings at lambda_NCE 1; FastCUT drops it, uses lambda_NCE 10
and flip equivariance (a randomly flipped input's features, flipped back, must match).

Patch locations and the flip are drawn from a stream shared by all replicas, and negatives come
from the same image only, so the losses do not depend on how the global batch is split.
This module imports without TensorFlow.
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
from monet_tf.models.generators import ENCODER_FEATURES
from monet_tf.models.patchnce import ProjectionHead, gather_patches, patch_nce_loss, sample_locations

METRICS = ("monet_gen_loss", "nce_loss", "identity_nce_loss", "gen_total_loss",
           "monet_critic_loss")
# The reference's nce_layers 0,4,8,12,16 of its ResnetGenerator, by name (generators.py).
DEFAULT_NCE_LAYERS = ("padded_input", "down_1", "down_2", "block_1", "block_5")
# What model.kind sets where the config leaves a CUT setting at its "kind's default".
PRESETS = {
    "cut": {"nce_weight": 1.0, "nce_identity": True, "flip_equivariance": False},
    "fastcut": {"nce_weight": 10.0, "nce_identity": False, "flip_equivariance": True},
}


class _Untracked:
    """Holds a Keras model without making it a tracked child (its variables are the
    generator's, which the generator already owns)."""

    def __init__(self, value):
        self.value = value


class ProjectionHeads(keras.Model):
    """One ProjectionHead per encoder layer (the reference's PatchSampleF), as one network so it
    has one optimizer and one checkpoint entry."""

    def __init__(self, layer_names, units: int = 256, seed: int | None = None,
                 name: str = "nce_heads", **kwargs):
        super().__init__(name=name, **kwargs)
        self.layer_names = tuple(layer_names)
        self.heads = [
            ProjectionHead(units, seed=None if seed is None else seed * 16 + i, name=f"head_{n}")
            for i, n in enumerate(self.layer_names)
        ]

    def build_from_channels(self, channels, num_patches: int) -> None:
        for head, c in zip(self.heads, channels):
            head.build((None, num_patches, int(c)))
        self.built = True

    def call(self, patches):
        return [head(p) for head, p in zip(self.heads, patches)]


def parse_layers(layers) -> tuple[str, ...]:
    """Layer names from a comma list (loss.nce_layers) or a sequence of names."""
    parts = layers.split(",") if isinstance(layers, str) else layers
    names = tuple(n.strip() for n in parts if n.strip())
    if not names:
        raise ValueError("loss.nce_layers is empty: name the encoder layers PatchNCE reads, e.g. "
                         + ",".join(DEFAULT_NCE_LAYERS))
    return names


class CUT(GANModel):
    """Photo -> Monet with a contrastive content loss: photo_to_monet, monet_critic, nce_heads.

    nce_layers: names of photo_to_monet's layers whose outputs PatchNCE compares (see
    generators.ENCODER_FEATURES). The projection heads are built from those layers' channel
    counts here, before the first step (the reference builds them on its first batch), so a
    checkpoint restores into them before fit.
    """

    NETWORKS = ("photo_to_monet", "monet_critic", "nce_heads")
    GENERATORS = ("photo_to_monet",)
    METRICS = METRICS
    LOSS_GROUPS = ((GENERATOR_LOSS, ("photo_to_monet", "nce_heads")),
                   (CRITIC_LOSS, ("monet_critic",)))

    def __init__(self, photo_to_monet: keras.Model, monet_critic: keras.Model,
                 nce_layers=DEFAULT_NCE_LAYERS, num_patches: int = 256, head_units: int = 256,
                 seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.photo_to_monet = photo_to_monet
        self.monet_critic = monet_critic
        self.nce_layers = parse_layers(nce_layers)
        names = [layer.name for layer in photo_to_monet.layers]
        missing = [n for n in self.nce_layers if n not in names]
        if missing:
            raise ValueError(
                f"loss.nce_layers: {photo_to_monet.name} has no layer {', '.join(missing)}; "
                f"its encoder features are {', '.join(n for n in ENCODER_FEATURES if n in names)}")
        self.num_patches = int(num_patches)
        features = [photo_to_monet.get_layer(n).output for n in self.nce_layers]
        # One pass that translates and returns the encoder features of its input, and the
        # encoder alone (for the translated images' features).
        self._translate_and_encode = _Untracked(
            keras.Model(photo_to_monet.inputs, [photo_to_monet.outputs[0], *features]))
        self._encode = _Untracked(keras.Model(photo_to_monet.inputs, features))
        self.nce_heads = ProjectionHeads(self.nce_layers, head_units, seed=seed * 4 + 3)
        self.nce_heads.build_from_channels([f.shape[-1] for f in features], self.num_patches)
        self.rng = step_rng(seed, name="train_step_rng")  # DiffAugment: per replica.
        # Patch locations and flips: the same on every replica (see the module docstring).
        self.patch_rng = step_rng(seed * 7 + 1, name="patch_rng", shared=True)
        self._make_trackers()
        self.built = True

    def call(self, photos, training=False):
        return self.photo_to_monet(photos, training=training)

    def compile(
        self,
        photo_to_monet_optimizer: keras.optimizers.Optimizer,
        monet_critic_optimizer: keras.optimizers.Optimizer,
        nce_heads_optimizer: keras.optimizers.Optimizer,
        gan_loss: str = "lsgan",
        gan_weight: float = 1.0,
        nce_weight: float = 1.0,
        nce_identity: bool = True,
        temperature: float = 0.07,
        flip_equivariance: bool = False,
        diffaugment: str = "",
        steps_per_execution: int = 1,
        jit_compile: bool = True,
        loss_scaling: bool | None = None,
    ):
        """Optimizers (generator, critic, projection heads) and the loss settings: lambda_GAN,
        lambda_NCE, the identity NCE on paintings, tau and flip equivariance."""
        if temperature <= 0:
            raise ValueError(f"loss.nce_temperature={temperature} must be > 0")
        if nce_weight < 0:
            raise ValueError(f"loss.nce_weight={nce_weight} must be >= 0")
        self.gan_loss = losses.check_gan_loss(gan_loss)
        self.gan_weight = float(gan_weight)
        self.nce_weight = float(nce_weight)
        self.nce_identity = bool(nce_identity)
        self.temperature = float(temperature)
        self.flip_equivariance = bool(flip_equivariance)
        self.diffaugment = parse_policy(diffaugment)
        optimizers = [photo_to_monet_optimizer, monet_critic_optimizer, nce_heads_optimizer]
        self._compile_optimizers(dict(zip(self.NETWORKS, optimizers)), loss_scaling,
                                 steps_per_execution, jit_compile)

    def _features(self, images) -> list:
        features = self._encode.value(images, training=True)
        return list(features) if isinstance(features, (list, tuple)) else [features]

    def _patch_nce(self, source_features, query_features):
        """Per-image PatchNCE [B], averaged over patches and layers (the reference's
        calculate_NCE_loss before lambda_NCE). The same locations for query and positive."""
        keys, queries = [], []
        for source, query in zip(source_features, query_features):
            _, height, width, _ = source.shape
            where = sample_locations(self.patch_rng, height, width, self.num_patches)
            keys.append(gather_patches(ops.stop_gradient(source), where))
            queries.append(gather_patches(query, where))
        per_layer = [
            ops.mean(patch_nce_loss(q, k, self.temperature), axis=1)
            for q, k in zip(self.nce_heads(queries), self.nce_heads(keys))
        ]
        return ops.mean(ops.stack(per_layer), axis=0)

    def compute_losses(self, photo, monet, global_batch: int) -> dict:
        """Every loss of one step on this replica's batch, as its share of the global-batch mean.

        Returns the METRICS plus `critic_total_loss`.
        """
        photo, monet = losses.full(photo), losses.full(monet)
        batch = static_batch(photo)
        mean = lambda per_example: losses.global_mean(per_example, global_batch)  # noqa: E731
        sources = ops.concatenate([photo, monet]) if self.nce_identity else photo

        if self.flip_equivariance:
            flip = keras.random.uniform((), seed=self.patch_rng) < 0.5
            flipped = ops.where(flip, ops.flip(sources, axis=2), sources)
            translated = self.photo_to_monet(flipped, training=True)
            # The sources' own features (not the flipped ones'), no gradient needed.
            source_features = self._features(sources)
            query_features = [ops.where(flip, ops.flip(f, axis=2), f)
                              for f in self._features(translated)]
        else:
            translated, *source_features = self._translate_and_encode.value(sources, training=True)
            query_features = self._features(translated)
        fake = translated[:batch]
        nce = self._patch_nce(source_features, query_features)

        augment = (lambda x: diff_augment(x, self.diffaugment, seed=self.rng)  # noqa: E731
                   if self.diffaugment else x)
        # One critic pass for both losses: each is differentiated only for its own networks.
        logits = self.monet_critic(augment(ops.concatenate([monet, fake])), training=True)
        real_logits, fake_logits = logits[:batch], logits[batch:]

        terms = {
            "monet_gen_loss": mean(losses.generator_loss(self.gan_loss, fake_logits)),
            "nce_loss": mean(nce[:batch]),
            "identity_nce_loss": (mean(nce[batch:]) if self.nce_identity
                                  else ops.zeros((), losses.full_precision())),
        }
        nce_total = (0.5 * (terms["nce_loss"] + terms["identity_nce_loss"]) if self.nce_identity
                     else terms["nce_loss"])
        terms["gen_total_loss"] = (self.gan_weight * terms["monet_gen_loss"]
                                   + self.nce_weight * nce_total)
        terms["monet_critic_loss"] = mean(losses.critic_loss(self.gan_loss, real_logits,
                                                             fake_logits))
        terms["critic_total_loss"] = terms["monet_critic_loss"]
        return terms


def cut_settings(cfg) -> dict:
    """The CUT settings of cfg.loss, with the kind's defaults where the config says "auto"."""
    kind = cfg.model.kind
    preset = PRESETS[kind]

    def choice(field, value):
        text = str(value).lower()
        if text == "auto":
            return preset[field]
        if text not in ("true", "false"):
            raise ValueError(f"loss.{field}={value!r} must be auto, true or false")
        return text == "true"

    weight = float(cfg.loss.nce_weight)
    return {
        "nce_weight": preset["nce_weight"] if weight == 0 else weight,
        "nce_identity": choice("nce_identity", cfg.loss.nce_identity),
        "flip_equivariance": choice("flip_equivariance", cfg.loss.nce_flip_equivariance),
    }


def build_cut(cfg, steps_per_epoch: int, global_batch_size: int,
              jit_compile: bool | None = None, replicas: int | None = None) -> CUT:
    """CUT or FastCUT (cfg.model.kind) from cfg: networks, three Adams, compiled and built.

    The same contract as build_cyclegan: every variable exists when it returns.
    """
    check_batch(steps_per_epoch, global_batch_size, replicas)
    if not str(cfg.model.generator).startswith("resnet"):
        raise ValueError(f"model.kind={cfg.model.kind} needs a ResNet generator (PatchNCE reads "
                         f"its encoder layers by name), not model.generator="
                         f"{cfg.model.generator!r}")
    settings = cut_settings(cfg)
    seed = int(cfg.seed)
    model = CUT(
        translator(cfg, "photo_to_monet", seed * 4),
        patch_critic(cfg, "monet_critic", seed * 4 + 2),
        nce_layers=cfg.loss.nce_layers,
        num_patches=cfg.loss.nce_patches,
        head_units=cfg.loss.nce_units,
        seed=seed,
        name=cfg.model.kind,
    )
    model.compile(
        *adam_optimizers(cfg, steps_per_epoch, CUT.NETWORKS).values(),
        gan_loss=cfg.loss.gan,
        gan_weight=cfg.loss.gan_weight,
        temperature=cfg.loss.nce_temperature,
        diffaugment=cfg.loss.diffaugment,
        steps_per_execution=cfg.train.steps_per_execution,
        jit_compile=resolve_jit(cfg, jit_compile),
        **settings,
    )
    model.global_batch_size = int(global_batch_size)
    return model
