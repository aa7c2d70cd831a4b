"""Generators by name: the ResNet and U-Net translators of pytorch-CycleGAN-and-pix2pix.

Functional keras.Models built from keras.layers / keras.ops only. Input: float images in [-1, 1],
[B, H, W, 3]; output: tanh float32 [B, H, W, 3] (float32 even under mixed precision).
"""

from __future__ import annotations

import keras
from keras import layers

from monet_tf.config import UPSAMPLES, check_generator, resnet_blocks
from monet_tf.models.layers import (ICNR, DepthToSpace, Initializers, ReflectionPadding2D,
                                    full_precision_output, instance_norm)

# Named layers of the ResNet generators, in the order of the reference ResnetGenerator's layer
# ids that CUT uses (0, 4, 8, 12, 16): the padded input, the two downsampling convolutions and
# the outputs of residual blocks 1..n.
ENCODER_FEATURES = ("padded_input", "down_1", "down_2") + tuple(f"block_{i}" for i in range(1, 10))


def build_generator(
    name: str,
    ngf: int = 64,
    upsample: str = "transpose",
    dropout: float = 0.0,
    norm_epsilon: float = 1e-5,
    image_size: int | None = None,
    model_name: str = "generator",
    seed: int | None = None,
    norm: str = "group_norm",
    reflect_padding: str = "pad",
) -> keras.Model:
    """Builds a generator by name (resnet_<n>blocks, e.g. resnet_9blocks | unet_256 | unet_128).

    image_size fixes the input's height and width (None: any multiple of generator_multiple(name);
    U-Nets always need their exact size). dropout is used inside residual blocks / U-Net decoder.
    norm and reflect_padding choose how instance norm and reflection padding are computed
    (monet_tf.models.layers: equal results, different programs); upsample changes the model.
    """
    check_generator(name)
    if upsample not in UPSAMPLES:
        raise ValueError(f"upsample must be one of {', '.join(UPSAMPLES)}, got {upsample!r}")
    if name.startswith("resnet"):
        blocks = resnet_blocks(name)
        return resnet_generator(blocks, ngf, upsample, dropout, norm_epsilon, image_size,
                                model_name, seed, norm, reflect_padding)
    size = 256 if name == "unet_256" else 128
    if image_size not in (None, size):
        raise ValueError(f"{name} needs {size}x{size} images, got image_size={image_size}")
    if upsample != "transpose":
        raise ValueError(f"{name} upsamples with transposed convolutions only, got "
                         f"upsample={upsample!r}")
    return unet_generator(size, ngf, dropout, norm_epsilon, model_name, seed, norm)


def resnet_generator(
    blocks: int = 9,
    ngf: int = 64,
    upsample: str = "transpose",
    dropout: float = 0.0,
    norm_epsilon: float = 1e-5,
    image_size: int | None = None,
    model_name: str = "generator",
    seed: int | None = None,
    norm: str = "group_norm",
    reflect_padding: str = "pad",
) -> keras.Model:
    """c7s1-ngf, d2ngf, d4ngf, `blocks` x R4ngf, u2ngf, ungf, c7s1-3 (Johnson et al. / CycleGAN).

    upsample: "transpose" (stride-2 transposed conv, the reference), "resize" (nearest resize,
    then a 3x3 conv at the new size) or "subpixel" (a 3x3 conv to 4x the filters at the old
    size, then depth-to-space, ICNR-initialised: resize's FLOPs, reading a quarter the pixels).
    """
    init = Initializers(seed)
    inputs = keras.Input((image_size, image_size, 3), name="image")

    def pad(x, size, name=None):
        return ReflectionPadding2D(size, method=reflect_padding, name=name)(x)

    def norm_layer():
        return instance_norm(norm_epsilon, method=norm)

    def conv_norm_relu(x, filters, kernel, strides=1, reflect=0, zero=0, pad_name=None,
                       conv_name=None):
        if reflect:
            x = pad(x, reflect, pad_name)
        if zero:
            x = layers.ZeroPadding2D(zero)(x)
        x = layers.Conv2D(filters, kernel, strides, use_bias=False, kernel_initializer=init(),
                          name=conv_name)(x)
        x = norm_layer()(x)
        return layers.ReLU()(x)

    # The layers named here are the encoder features CUT's PatchNCE reads (ENCODER_FEATURES).
    x = conv_norm_relu(inputs, ngf, 7, reflect=3, pad_name="padded_input")
    x = conv_norm_relu(x, ngf * 2, 3, strides=2, zero=1, conv_name="down_1")
    x = conv_norm_relu(x, ngf * 4, 3, strides=2, zero=1, conv_name="down_2")
    for block in range(blocks):
        y = conv_norm_relu(x, ngf * 4, 3, reflect=1)
        if dropout:
            y = layers.Dropout(dropout)(y)
        y = pad(y, 1)
        y = layers.Conv2D(ngf * 4, 3, use_bias=False, kernel_initializer=init())(y)
        y = norm_layer()(y)
        x = layers.Add(name=f"block_{block + 1}")([x, y])
    for filters in (ngf * 2, ngf):
        if upsample == "transpose":
            x = layers.Conv2DTranspose(
                filters, 3, 2, padding="same", use_bias=False, kernel_initializer=init()
            )(x)
        elif upsample == "resize":
            x = layers.UpSampling2D(2, interpolation="nearest")(x)
            x = layers.Conv2D(filters, 3, use_bias=False, kernel_initializer=init())(pad(x, 1))
        else:
            x = layers.Conv2D(filters * 4, 3, use_bias=False,
                              kernel_initializer=ICNR(init()))(pad(x, 1))
            x = DepthToSpace(2)(x)
        x = norm_layer()(x)
        x = layers.ReLU()(x)
    x = pad(x, 3)
    x = layers.Conv2D(3, 7, kernel_initializer=init())(x)
    outputs = full_precision_output("tanh", "translated")(x)
    return keras.Model(inputs, outputs, name=model_name)


def unet_generator(
    size: int = 256,
    ngf: int = 64,
    dropout: float = 0.0,
    norm_epsilon: float = 1e-5,
    model_name: str = "generator",
    seed: int | None = None,
    norm: str = "group_norm",
) -> keras.Model:
    """pix2pix U-Net: log2(size) stride-2 4x4 convs down to 1x1, mirrored up with skip connections.

    As in the reference, the innermost and outermost levels have no norm and the decoder's
    middle ngf*8 levels get dropout when dropout > 0.
    """
    init = Initializers(seed)
    levels = size.bit_length() - 1  # 8 for 256, 7 for 128
    filters = [ngf * min(2**i, 8) for i in range(levels)]
    last = levels - 1
    inputs = keras.Input((size, size, 3), name="image")
    x = inputs
    skips = []
    for i, f in enumerate(filters):
        if i > 0:
            x = layers.LeakyReLU(0.2)(x)
        has_norm = 0 < i < last
        x = layers.Conv2D(
            f, 4, 2, padding="same", use_bias=not has_norm, kernel_initializer=init()
        )(x)
        if has_norm:
            x = instance_norm(norm_epsilon, method=norm)(x)
        skips.append(x)
    for i in range(last, 0, -1):
        x = layers.ReLU()(x)
        x = layers.Conv2DTranspose(
            filters[i - 1], 4, 2, padding="same", use_bias=False, kernel_initializer=init()
        )(x)
        x = instance_norm(norm_epsilon, method=norm)(x)
        if dropout and 4 <= i < last:
            x = layers.Dropout(dropout)(x)
        x = layers.Concatenate()([skips[i - 1], x])
    x = layers.ReLU()(x)
    x = layers.Conv2DTranspose(3, 4, 2, padding="same", kernel_initializer=init())(x)
    outputs = full_precision_output("tanh", "translated")(x)
    return keras.Model(inputs, outputs, name=model_name)
