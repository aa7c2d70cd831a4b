"""PatchGAN critic (pix2pix NLayerDiscriminator) with keras.layers only.

Output: one float32 logit per overlapping patch; with n_layers=3 each sees a 70x70 input window.
"""

from __future__ import annotations

import keras
from keras import layers

from monet_tf.config import CRITICS
from monet_tf.models.layers import Initializers, full_precision_output, instance_norm


def build_critic(
    name: str = "patchgan",
    ndf: int = 64,
    n_layers: int = 3,
    noise: float = 0.0,
    spectral_norm: bool = False,
    norm_epsilon: float = 1e-5,
    norm: str = "instance",
    image_size: int | None = None,
    model_name: str = "critic",
    seed: int | None = None,
    norm_method: str = "group_norm",
) -> keras.Model:
    """Builds a critic by name (only "patchgan" so far).

    noise: std of Gaussian noise added to the input while training (instance noise; 0: off).
    spectral_norm wraps every convolution in keras.layers.SpectralNormalization.
    norm: "instance" (reference) or "none"; norm_method: how instance norm is computed
    (monet_tf.models.layers.instance_norm).
    """
    if name not in CRITICS:
        raise ValueError(f"unknown critic {name!r}; choose one of {', '.join(CRITICS)}")
    if n_layers < 1:
        raise ValueError(f"critic n_layers must be >= 1, got {n_layers}")
    if norm not in ("instance", "none"):
        raise ValueError(f"critic norm must be 'instance' or 'none', got {norm!r}")
    init = Initializers(seed)
    use_norm = norm == "instance"

    def conv(x, filters, strides, bias):
        x = layers.ZeroPadding2D(1)(x)
        layer = layers.Conv2D(filters, 4, strides, use_bias=bias, kernel_initializer=init())
        if spectral_norm:
            layer = layers.SpectralNormalization(layer)
        return layer(x)

    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = inputs
    if noise:
        x = layers.GaussianNoise(noise, seed=seed)(x)
    x = layers.LeakyReLU(0.2)(conv(x, ndf, 2, bias=True))
    for n in range(1, n_layers + 1):
        x = conv(x, ndf * min(2**n, 8), 2 if n < n_layers else 1, bias=not use_norm)
        if use_norm:
            x = instance_norm(norm_epsilon, method=norm_method)(x)
        x = layers.LeakyReLU(0.2)(x)
    x = conv(x, 1, 1, bias=True)
    outputs = full_precision_output("linear", "patch_logits")(x)
    return keras.Model(inputs, outputs, name=model_name)
