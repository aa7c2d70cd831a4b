"""Writes a folder of images as TFRecords in exactly the competition's schema.

    python -m monet_tf.data.make_tfrecords --input DIR --output DIR --domain monet|photo --shards N

image_name is the file stem; a file that already is a 256x256 RGB JPEG is stored byte for byte,
anything else (other sizes, PNG, grayscale, RGBA, CMYK) is converted to RGB, resized to 256x256
and encoded as JPEG. Shards are named like the competition's: `<domain>NN-<count>.tfrec`.
"""

from __future__ import annotations

import os

import tensorflow as tf
from absl import flags

from monet_tf.data import records
from monet_tf.data.images import decode_rgb, resize_square
from monet_tf.data.sources import DataError, IMAGE_EXTENSIONS, list_recursive

FLAGS = flags.FLAGS

SIZE = 256


def _is_competition_jpeg(data: bytes) -> bool:
    if not tf.io.is_jpeg(data):
        return False
    try:
        shape = tf.io.extract_jpeg_shape(data).numpy().tolist()
    except tf.errors.InvalidArgumentError:
        return False
    return shape == [SIZE, SIZE, 3]


def encode_for_record(data: bytes, path: str, quality: int = 95) -> bytes:
    """The bytes to store: unchanged if already a 256x256 RGB JPEG, else a re-encoded JPEG."""
    if _is_competition_jpeg(data):
        return data
    try:
        image = decode_rgb(data)
    except tf.errors.InvalidArgumentError as e:
        raise DataError(f"{path}: not a decodable image ({e.message.split(';')[0]})") from None
    return tf.io.encode_jpeg(resize_square(image, SIZE), quality=quality).numpy()


def write_tfrecords(input_dir: str, output_dir: str, domain: str, shards: int) -> list[str]:
    if not tf.io.gfile.isdir(input_dir):
        raise DataError(f"--input={input_dir}: no such directory")
    files = list_recursive(input_dir, IMAGE_EXTENSIONS)
    if not files:
        raise DataError(f"--input={input_dir}: no {', '.join(IMAGE_EXTENSIONS)} files found")
    if shards < 1:
        raise DataError(f"--shards={shards}: must be at least 1")
    shards = min(shards, len(files))
    tf.io.gfile.makedirs(output_dir)
    written = []
    for shard in range(shards):
        part = files[shard::shards]
        path = os.path.join(output_dir, f"{domain}{shard:02d}-{len(part)}.tfrec")
        with tf.io.TFRecordWriter(path) as writer:
            for file in part:
                with tf.io.gfile.GFile(file, "rb") as f:
                    data = encode_for_record(f.read(), file)
                stem = os.path.splitext(os.path.basename(file))[0]
                writer.write(records.serialize(stem, data, domain))
        written.append(path)
    return written


def main(argv):
    del argv
    try:
        paths = write_tfrecords(FLAGS.input, FLAGS.output, FLAGS.domain, FLAGS.shards)
    except DataError as e:
        from monet_tf.runtime import commandline

        commandline.fail(str(e))
    print(f"wrote {len(paths)} shards to {FLAGS.output}")


def define_flags() -> None:
    flags.DEFINE_string("input", None, "Folder of JPEG/PNG images (searched recursively).")
    flags.DEFINE_string("output", None, "Folder for the .tfrec shards.")
    flags.DEFINE_enum("domain", None, ["monet", "photo"], "Written as each record's target.")
    flags.DEFINE_integer("shards", 1, "Number of shards.")
    flags.mark_flags_as_required(["input", "output", "domain"])


if __name__ == "__main__":  # python -m monet_tf.data.make_tfrecords: monet-tf make-tfrecords.
    from monet_tf.runtime import commandline

    define_flags()
    commandline.run(main)
