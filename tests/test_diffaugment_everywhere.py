"""DiffAugment (Zhao et al., 2020) where the paper puts it: on every image any critic sees.

The paper's point is that a critic must only ever see augmented images, real and fake alike, in
its own loss and in the generator's, all with the same policy; augmenting only the reals (or
skipping the generator's term) lets the critic tell the two apart by the augmentation itself.

Here DiffAugment is replaced by a marker that adds a policy-specific offset far outside the
[-1, 1] image range, and each critic by a spy that records its inputs. One step's losses are
computed for every family; every row a critic saw must carry the configured policy's offset,
and the real images must be among them.
"""

import numpy as np
import pytest
import tensorflow as tf

from monet_tf.models import cut, cyclegan, dcgan
from monet_tf.models.diffaugment import POLICIES, parse_policy
from monet_tf.models.families import build_model
from tests import tiny_config

SIZE, BATCH = 32, 2
POLICY = "color,translation,cutout"


def offset(policy) -> float:
    """100 x (1 + the policy's bit set): a different offset for every policy."""
    names = parse_policy(policy) if isinstance(policy, str) else tuple(policy)
    return 100.0 * (1 + sum(2**POLICIES.index(n) for n in names))


def marker(images, policy, seed=None):
    return images + offset(policy)


class CriticSpy:
    """Stands in for a critic network: records every batch it is called on, then calls it."""

    def __init__(self, critic):
        self.critic, self.inputs = critic, []

    def __call__(self, images, training=False):
        self.inputs.append(np.asarray(images))
        return self.critic(images, training=training)


def _losses_with_spies(monkeypatch, kind: str, pool: int = 0, policy: str = POLICY):
    for module in (cyclegan, cut, dcgan):
        monkeypatch.setattr(module, "diff_augment", marker)
    cfg = tiny_config.get_config()
    cfg.model.kind = kind
    cfg.loss.diffaugment = policy
    cfg.loss.pool_size = pool
    cfg.loss.nce_patches = 16
    cfg.model.latent_dim = 16
    cfg.model.dcgan_width = 16
    model = build_model(cfg, steps_per_epoch=1, global_batch_size=BATCH, jit_compile=False)
    critics = [n for n in model.NETWORKS if n.endswith("_critic")]
    spies = {n: CriticSpy(getattr(model, n)) for n in critics}
    for name, spy in spies.items():
        object.__setattr__(model, name, spy)  # Past Keras' attribute tracking: a plain swap.
    rng = np.random.default_rng(0)
    photo, monet = (tf.constant(rng.uniform(-1, 1, (BATCH, SIZE, SIZE, 3)), tf.float32)
                    for _ in "pm")
    if kind == "dcgan":
        photo = tf.zeros((BATCH, 1, 1, 3))
    for _ in range(2):  # The second step: a full pool swaps in stored images.
        model.compute_losses(photo, monet, global_batch=BATCH)
    return spies, {"photo_critic": photo, "monet_critic": monet}


@pytest.mark.parametrize("kind,pool,rows", [
    ("cyclegan", 0, 2 * BATCH),  # one pass on [real, fake] serves both losses
    ("cyclegan", 1, 3 * BATCH),  # [real, pooled fake] for the critic, fake for the generator
    ("cut", 0, 2 * BATCH),
    ("fastcut", 0, 2 * BATCH),
    ("dcgan", 0, 2 * BATCH),
])
def test_every_critic_input_is_augmented_with_the_one_policy(monkeypatch, kind, pool, rows):
    spies, reals = _losses_with_spies(monkeypatch, kind, pool)
    want = offset(POLICY)
    for name, spy in spies.items():
        seen = np.concatenate(spy.inputs)
        assert len(seen) == 2 * rows, f"{name} saw {len(seen)} images in 2 steps"
        # Every image, real or fake, pooled or fresh, in either loss: policy's offset, no other.
        off = np.abs(seen - want).max(axis=(1, 2, 3))
        assert (off <= 1.0 + 1e-5).all(), (
            f"{name}: {int((off > 1.0 + 1e-5).sum())} of {len(seen)} inputs not augmented "
            f"with {POLICY} (offsets {sorted(set(np.round(seen.mean(axis=(1, 2, 3)), -2)))})")
        real = np.asarray(reals[name]) + want
        for image in real:  # The reals went through the same augmentation.
            assert np.isclose(seen, image[None], atol=1e-5).all(axis=(1, 2, 3)).sum() == 2, name


def test_the_marker_tells_a_skipped_or_different_augmentation(monkeypatch):
    """The spies would see it: a policy's own offset, other policies' others, none without."""
    x = np.zeros((1, 2, 2, 3), np.float32)
    assert len({offset(p) for p in ("color", "translation", "cutout", POLICY, "color,cutout")}) == 5
    assert np.all(marker(x, POLICY) == offset(POLICY)) and offset(POLICY) > 100 + 2
