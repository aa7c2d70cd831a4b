"""Data: competition TFRecords, image folders or TFDS -> validated -> tf.data pipelines.

    sources = find_sources(data_dir)              # where the images are
    report = validate(sources, ...)               # every record checked once, before training
    ds = train_dataset(sources, report, cfg.data, global_batch, seed)

May import runtime/ (the console) and monet_tf.config; nothing of models, which data flows into.
`inspect` and `make_tfrecords` are the commands `monet-tf inspect` and `monet-tf make-tfrecords`.
"""

from monet_tf.data.images import decode_rgb, resize_square, to_float, to_uint8
from monet_tf.data.pipeline import (
    augment,
    eval_images,
    heldout_photos,
    steps_per_epoch,
    train_batch_shapes,
    train_dataset,
    train_photo_count,
)
from monet_tf.data.sources import (
    DataError,
    DataSources,
    Source,
    find_sources,
    read_image_files,
    source_from_spec,
)
from monet_tf.data.validate import DataReport, DomainReport, check_records, validate

__all__ = [
    "DataError", "DataReport", "DataSources", "DomainReport", "Source", "augment", "check_records",
    "decode_rgb", "eval_images", "find_sources", "heldout_photos", "read_image_files",
    "resize_square", "source_from_spec", "steps_per_epoch", "to_float", "to_uint8",
    "train_batch_shapes", "train_dataset", "train_photo_count", "validate",
]
