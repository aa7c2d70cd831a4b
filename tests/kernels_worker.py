"""Checks of monet_tf.models.layers' accelerator options, run under one Keras backend.

    KERAS_BACKEND=jax python tests/kernels_worker.py WORKDIR

Prints one JSON object of measured differences (tests/test_models_kernels.py judges them); run
once per backend, since Keras picks its backend once per process.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _value_and_grad(fn, x: np.ndarray, weights: np.ndarray):
    """fn(x) and d sum(fn(x) * weights) / dx, in the process's backend."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        def loss(v):
            y = fn(v)
            return (y * weights).sum(), y

        (_, y), grad = jax.value_and_grad(loss, has_aux=True)(x)
        return np.asarray(y), np.asarray(grad)
    import tensorflow as tf

    v = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(v)
        y = fn(v)
        total = tf.reduce_sum(tf.cast(y, tf.float64) * weights)
    return y.numpy(), tape.gradient(total, v).numpy()


def _paper_instance_norm(x: np.ndarray, eps: float) -> np.ndarray:
    """Ulyanov et al. 2016, eq. 4, in float64: per image and channel over height and width."""
    x = x.astype(np.float64)
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = ((x - mean) ** 2).mean(axis=(1, 2), keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


def _max_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def norms(report: dict) -> None:
    import keras

    from monet_tf.models.layers import instance_norm

    rng = np.random.default_rng(0)
    # An offset and a spread per channel, as a bias-free conv's outputs can drift to.
    x = (3.0 + 2.0 * rng.standard_normal((2, 9, 7, 5))).astype(np.float32)
    weights = rng.standard_normal(x.shape)
    eps = 1e-5
    outputs = {}
    for method in ("group_norm", "one_pass"):
        layer = instance_norm(eps, method=method)
        outputs[method] = _value_and_grad(layer, x, weights)
    paper = _paper_instance_norm(x, eps)
    report["norm_output_vs_group_norm"] = _max_diff(outputs["one_pass"][0],
                                                    outputs["group_norm"][0])
    report["norm_grad_vs_group_norm"] = _max_diff(outputs["one_pass"][1], outputs["group_norm"][1])
    report["norm_grad_scale"] = float(np.max(np.abs(outputs["group_norm"][1])))
    report["norm_output_vs_paper"] = {m: _max_diff(o[0], paper) for m, o in outputs.items()}
    # bfloat16 in, bfloat16 out, statistics in float32: as close to the paper as bf16 rounding.
    with _policy("mixed_bfloat16"):
        layer = instance_norm(eps, method="one_pass")
        y = layer(keras.ops.cast(x, "bfloat16"))
        report["norm_bf16_dtype"] = keras.backend.standardize_dtype(y.dtype)
        report["norm_bf16_vs_paper"] = _max_diff(keras.ops.convert_to_numpy(
            keras.ops.cast(y, "float32")), paper)


class _policy:
    """The global dtype policy set for a block, restored after."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        import keras

        self.saved = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.name)

    def __exit__(self, *exc):
        import keras

        keras.config.set_dtype_policy(self.saved)


def padding(report: dict) -> None:
    from monet_tf.models.layers import ReflectionPadding2D

    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 5, 3)).astype(np.float32)
    for p in (1, 3):
        weights = rng.standard_normal((2, 6 + 2 * p, 5 + 2 * p, 3))
        ref = np.pad(x, [(0, 0), (p, p), (p, p), (0, 0)], mode="reflect")
        got = {m: _value_and_grad(ReflectionPadding2D(p, method=m), x, weights)
               for m in ("pad", "gather")}
        report[f"pad{p}_vs_numpy"] = {m: _max_diff(g[0], ref) for m, g in got.items()}
        report[f"pad{p}_grad_gather_vs_pad"] = _max_diff(got["gather"][1], got["pad"][1])


def depth_to_space(report: dict) -> None:
    import keras

    from monet_tf.models.layers import ICNR, DepthToSpace

    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 4, 12)).astype(np.float32)
    y = keras.ops.convert_to_numpy(DepthToSpace(2)(x))
    # Shi et al.'s periodic shuffle, element by element: out[2h+i, 2w+j, c] = in[h, w, (2i+j)C+c].
    c = 3
    expected = np.zeros((2, 6, 8, c), np.float32)
    for i in range(2):
        for j in range(2):
            expected[:, i::2, j::2, :] = x[..., (2 * i + j) * c:(2 * i + j + 1) * c]
    report["depth_to_space_vs_definition"] = _max_diff(y, expected)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        report["depth_to_space_vs_tf"] = _max_diff(y, tf.nn.depth_to_space(x, 2).numpy())
    # ICNR: at initialisation the sub-pixel conv equals nearest-neighbour upsampling of a conv.
    conv = keras.layers.Conv2D(8, 3, padding="same", use_bias=False,
                               kernel_initializer=ICNR(keras.initializers.RandomNormal(seed=3)))
    up = keras.ops.convert_to_numpy(DepthToSpace(2)(conv(x)))
    low = keras.ops.convert_to_numpy(keras.ops.conv(x, conv.kernel[..., :2], padding="same"))
    report["icnr_vs_nearest"] = _max_diff(up, low.repeat(2, axis=1).repeat(2, axis=2))


def _cfg(norm: str, padding_method: str):
    from tests.tiny_config import get_config

    cfg = get_config()
    cfg.model.instance_norm = norm
    cfg.model.reflect_padding = padding_method
    return cfg


def networks_and_checkpoints(report: dict, workdir: str) -> None:
    """The tiny CycleGAN both ways from one seed: equal outputs and gradients; a checkpoint of
    the reference layers restores into the accelerator ones."""
    import keras

    from monet_tf.models.checkpoints import training_checkpoints
    from monet_tf.models.families import build_model

    def model(norm, padding_method):
        keras.utils.set_random_seed(0)
        return build_model(_cfg(norm, padding_method), steps_per_epoch=3, global_batch_size=2)

    reference, fused = model("group_norm", "pad"), model("one_pass", "gather")
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    for name in ("photo_to_monet", "monet_critic"):
        weights = rng.standard_normal(getattr(reference, name)(x).shape)
        a = _value_and_grad(getattr(reference, name), x, weights)
        b = _value_and_grad(getattr(fused, name), x, weights)
        report[f"{name}_output_diff"] = _max_diff(a[0], b[0])
        report[f"{name}_input_grad_diff"] = _max_diff(a[1], b[1])
        report[f"{name}_input_grad_scale"] = float(np.max(np.abs(a[1])))

    # Change the reference's weights, save, restore into a fresh fused model: same outputs.
    for variable in reference.photo_to_monet.trainable_variables:
        variable.assign(variable + 0.01)
    before = keras.ops.convert_to_numpy(reference.photo_to_monet(x))
    saved = training_checkpoints(reference, workdir, keep=2).save(1)
    restored = model("one_pass", "gather")
    training_checkpoints(restored, workdir, keep=2).restore(saved)
    after = keras.ops.convert_to_numpy(restored.photo_to_monet(x))
    report["checkpoint_restored_diff"] = _max_diff(before, after)
    report["checkpoint_moved_from_init"] = _max_diff(
        before, keras.ops.convert_to_numpy(fused.photo_to_monet(x)))


def main() -> None:
    import keras

    report = {"backend": keras.backend.backend()}
    norms(report)
    padding(report)
    depth_to_space(report)
    networks_and_checkpoints(report, sys.argv[1])
    print("REPORT " + json.dumps(report))


if __name__ == "__main__":
    main()
