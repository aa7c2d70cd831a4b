"""DiffAugment (Zhao et al., 2020): differentiable colour, translation and cutout for critic inputs.

keras.ops / keras.random only. Images are in [-1, 1]. Each example gets its own random parameters;
the caller augments real and fake critic inputs with the same policy (ideally in one batch).
"""

from __future__ import annotations

import keras
from keras import ops

from monet_tf.config import DIFFAUGMENT_POLICIES as POLICIES


def parse_policy(policy: str) -> tuple[str, ...]:
    """'color,translation' -> ('color', 'translation'); empty string -> ()."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    for p in names:
        if p not in POLICIES:
            raise ValueError(f"unknown DiffAugment policy {p!r}; choose from {', '.join(POLICIES)}")
    return names


def diff_augment(images, policy: str | tuple[str, ...], seed=None):
    """Applies each transform of `policy` in order; seed: an int or a keras.random.SeedGenerator."""
    names = parse_policy(policy) if isinstance(policy, str) else tuple(policy)
    for p in names:
        images = {"color": color, "translation": translation, "cutout": cutout}[p](images, seed)
    return images


def _batch_uniform(images, seed, low=0.0, high=1.0):
    b = ops.shape(images)[0]
    return keras.random.uniform((b, 1, 1, 1), low, high, dtype=images.dtype, seed=seed)


def color(images, seed=None):
    """Random brightness (±0.5), saturation (×[0, 2]) and contrast (×[0.5, 1.5])."""
    x = images + (_batch_uniform(images, seed) - 0.5)
    mean = ops.mean(x, axis=3, keepdims=True)
    x = (x - mean) * (_batch_uniform(images, seed) * 2.0) + mean
    mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
    return (x - mean) * (_batch_uniform(images, seed) + 0.5) + mean


def translation(images, seed=None, ratio: float = 0.125):
    """Shifts each image by up to ratio × size pixels in each direction, filling with zeros."""
    b, h, w, c = ops.shape(images)
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = keras.random.randint((b, 1), -sh, sh + 1, seed=seed)
    tx = keras.random.randint((b, 1), -sw, sw + 1, seed=seed)
    padded = ops.pad(images, [[0, 0], [sh, sh], [sw, sw], [0, 0]])
    rows = ops.arange(h, dtype="int32")[None, :] + sh - ops.cast(ty, "int32")  # [B, H]
    cols = ops.arange(w, dtype="int32")[None, :] + sw - ops.cast(tx, "int32")  # [B, W]
    rows = ops.broadcast_to(rows[:, :, None, None], (b, h, w + 2 * sw, c))
    x = ops.take_along_axis(padded, rows, axis=1)
    cols = ops.broadcast_to(cols[:, None, :, None], (b, h, w, c))
    return ops.take_along_axis(x, cols, axis=2)


def cutout(images, seed=None, ratio: float = 0.5):
    """Zeroes one square of ratio × size per image at a random centre (clipped at the border)."""
    b, h, w, _ = ops.shape(images)
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = keras.random.randint((b, 1, 1, 1), 0, h + (1 - ch % 2), seed=seed)
    cx = keras.random.randint((b, 1, 1, 1), 0, w + (1 - cw % 2), seed=seed)
    y = ops.arange(h, dtype="int32")[None, :, None, None]
    x = ops.arange(w, dtype="int32")[None, None, :, None]
    top = ops.cast(cy, "int32") - ch // 2
    left = ops.cast(cx, "int32") - cw // 2
    inside = (y >= top) & (y < top + ch) & (x >= left) & (x < left + cw)
    return images * ops.cast(ops.logical_not(inside), images.dtype)
