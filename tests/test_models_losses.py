"""Losses on hand-computed inputs, LinearDecay, DiffAugment."""

import keras
import numpy as np
import pytest

from monet_tf.models import LinearDecay, losses
from monet_tf.models.diffaugment import color, cutout, diff_augment, translation

REAL = np.array([[[[2.0]], [[0.0]]]], "float32").reshape(1, 2, 1, 1)  # logits 2 and 0
FAKE = np.array([-1.0, 1.0], "float32").reshape(1, 2, 1, 1)


def _value(x):
    return np.asarray(x).tolist()


def test_lsgan():
    # generator: mean((D(fake) - 1)^2) = ((−2)^2 + 0^2) / 2 = 2
    assert _value(losses.generator_loss("lsgan", FAKE)) == pytest.approx([2.0])
    # critic: 0.5 * (mean((real-1)^2) + mean(fake^2)) = 0.5 * ((1 + 1)/2 + (1 + 1)/2) = 1
    assert _value(losses.critic_loss("lsgan", REAL, FAKE)) == pytest.approx([1.0])


def test_bce_from_logits():
    sp = lambda x: np.log1p(np.exp(x))  # noqa: E731  softplus
    assert _value(losses.generator_loss("bce", FAKE)) == pytest.approx([(sp(1) + sp(-1)) / 2])
    expected = 0.5 * ((sp(-2) + sp(0)) / 2 + (sp(-1) + sp(1)) / 2)
    assert _value(losses.critic_loss("bce", REAL, FAKE)) == pytest.approx([expected])


def test_hinge():
    assert _value(losses.generator_loss("hinge", FAKE)) == pytest.approx([0.0])  # -(−1 + 1)/2
    # relu(1 - real) = [0, 1] -> 0.5; relu(1 + fake) = [0, 2] -> 1; halved: 0.75
    assert _value(losses.critic_loss("hinge", REAL, FAKE)) == pytest.approx([0.75])


def test_per_example_and_float32():
    fake = np.stack([np.zeros((2, 2, 1)), np.ones((2, 2, 1))]).astype("float16")
    out = losses.generator_loss("lsgan", fake)
    assert out.dtype == "float32" and _value(out) == pytest.approx([1.0, 0.0])
    a = np.zeros((2, 2, 2, 3), "float32")
    b = np.concatenate([np.full((1, 2, 2, 3), 0.5), np.full((1, 2, 2, 3), -2.0)]).astype("float32")
    assert _value(losses.l1(a, b)) == pytest.approx([0.5, 2.0])
    assert float(losses.global_mean(losses.l1(a, b), 4)) == pytest.approx(2.5 / 4)


def test_unknown_loss():
    with pytest.raises(ValueError, match="unknown gan loss 'wgan'"):
        losses.generator_loss("wgan", FAKE)


def test_linear_decay():
    s = LinearDecay(2e-4, constant_steps=10, decay_steps=5)
    values = [float(s(step)) for step in (0, 9, 10, 11, 14, 15, 100)]
    assert values == pytest.approx([2e-4, 2e-4, 2e-4, 1.6e-4, 0.4e-4, 0.0, 0.0])
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(s))
    assert isinstance(again, LinearDecay) and float(again(12)) == pytest.approx(1.2e-4)


def test_linear_decay_follows_optimizer_iterations():
    opt = keras.optimizers.Adam(LinearDecay(1.0, 2, 2))
    v = keras.Variable(np.zeros(1, "float32"))
    lrs = []
    for _ in range(4):
        lrs.append(float(opt.learning_rate))
        opt.apply([np.ones(1, "float32")], [v])
    assert lrs == pytest.approx([1.0, 1.0, 1.0, 0.5])


def _batch(seed=0, b=4, size=16):
    return np.random.default_rng(seed).uniform(-1, 1, (b, size, size, 3)).astype("float32")


def test_translation_shifts_with_zero_fill():
    x = _batch()
    y = np.asarray(translation(x, seed=keras.random.SeedGenerator(1)))
    assert y.shape == x.shape
    for i in range(len(x)):
        # Each output equals the input shifted by some (dy, dx) within 2 pixels, zeros elsewhere.
        found = False
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                shifted = np.zeros_like(x[i])
                src = x[i][max(-dy, 0) : 16 - max(dy, 0), max(-dx, 0) : 16 - max(dx, 0)]
                shifted[max(dy, 0) : 16 + min(dy, 0), max(dx, 0) : 16 + min(dx, 0)] = src
                found |= np.allclose(shifted, y[i])
        assert found


def test_cutout_zeroes_a_clipped_square():
    x = np.ones((8, 16, 16, 3), "float32")
    y = np.asarray(cutout(x, seed=keras.random.SeedGenerator(2)))
    zeros = (y[..., 0] == 0).sum(axis=(1, 2))
    assert np.all(zeros > 0) and np.all(zeros <= 64)  # at most an 8x8 square
    assert np.all((y == 0) | (y == 1))


def test_color_and_policy():
    x = _batch()
    y = np.asarray(color(x, seed=keras.random.SeedGenerator(3)))
    assert y.shape == x.shape and not np.allclose(x, y)
    seed = keras.random.SeedGenerator(4)
    out = diff_augment(x, "color,translation,cutout", seed=seed)
    assert out.shape == x.shape
    np.testing.assert_array_equal(diff_augment(x, "", seed=seed), x)
    with pytest.raises(ValueError, match="unknown DiffAugment policy 'rotate'"):
        diff_augment(x, "color,rotate")
