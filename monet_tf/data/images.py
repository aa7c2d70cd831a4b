"""Image conversions shared by the pipeline, export, predict and scores (pure TensorFlow ops)."""

import tensorflow as tf


def decode_rgb(image_bytes: tf.Tensor) -> tf.Tensor:
    """JPEG/PNG/GIF/BMP/WebP bytes -> uint8 [H, W, 3]; grayscale, RGBA and CMYK become RGB."""
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def to_float(image: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1], the generators' range."""
    return tf.cast(image, tf.float32) / 127.5 - 1.0


def to_uint8(image: tf.Tensor) -> tf.Tensor:
    """float [-1, 1] -> uint8, rounded and clipped."""
    image = (tf.cast(image, tf.float32) + 1.0) * 127.5
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def resize_square(image: tf.Tensor, size: int) -> tf.Tensor:
    """Resizes to size x size (area-antialiased when shrinking); a no-op when already that size."""
    shape = tf.shape(image)
    same = tf.logical_and(tf.equal(shape[0], size), tf.equal(shape[1], size))
    return tf.cond(
        same,
        lambda: tf.ensure_shape(image, [size, size, 3]),
        lambda: tf.cast(tf.round(tf.clip_by_value(
            tf.image.resize(image, [size, size], method="bilinear", antialias=True), 0, 255)),
            tf.uint8),
    )
