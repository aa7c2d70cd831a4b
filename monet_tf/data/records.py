"""The competition's TFRecord schema: image_name, image (JPEG bytes), target; all tf.string.

Records without a target (written by other tools) still parse: only the name and image are read.
"""

import tensorflow as tf

FEATURES = {
    "image_name": tf.io.FixedLenFeature([], tf.string),
    "image": tf.io.FixedLenFeature([], tf.string),
    "target": tf.io.FixedLenFeature([], tf.string, default_value=""),
}


def parse(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """A serialized record -> (image_name, encoded image bytes)."""
    example = tf.io.parse_single_example(serialized, FEATURES)
    return example["image_name"], example["image"]


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def serialize(image_name: str, image_bytes: bytes, target: str) -> bytes:
    return tf.train.Example(features=tf.train.Features(feature={
        "image_name": _bytes(image_name.encode()),
        "image": _bytes(image_bytes),
        "target": _bytes(target.encode()),
    })).SerializeToString()
