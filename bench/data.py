r"""Training-pipeline images/s: monet_tf.data.train_dataset against a plain tutorial pipeline.

    python bench/data.py                    # 3,000 photos per measurement, 5 repeats, batch 32
    python bench/data.py --images=1000 --repeats=3 --batch=1

Both read the competition's 7,038 photos (../shared/data/gan-getting-started/photo_tfrec) and
produce float32 [-1, 1] batches of [batch, 256, 256, 3] with random jitter and horizontal flip:

- plain: the pipeline of the TensorFlow CycleGAN tutorial's random_jitter on Kaggle's TFRecords,
  as the notebooks write it: TFRecordDataset -> parse -> decode_jpeg -> resize 286 nearest ->
  random crop 256 -> random flip -> normalise, AUTOTUNE map, batch (drop_remainder), prefetch. It
  does not shuffle, which only flatters it.
- ours: `train_dataset` with the config defaults (image_size 256, jitter 1.12x bilinear, flip,
  cache, shuffle buffer 2048 per domain, 2% of photos held out) over the same photo shards, zipped
  with the 300 paintings of monet_tfrec as training uses it.

Equal work, counted conservatively: only photos are counted on both sides, so ours is charged for
the painting it also augments and batches with every photo (twice the output pixels of plain).
Ours is iterated as monet_tf.training.job uses it: a new `train_dataset` (new seed) every epoch,
sharing the decoded-image cache of the first. Its first epoch decodes every photo into that cache;
its rate is printed on its own line (with its ratio to plain) because a run pays it once, while the
plain pipeline decodes every photo again every epoch. `ratio` is the steady state, every epoch after
the first. Validation of the records (`validate`) runs once before training and is not timed.
Each measurement uses a fresh iterator, untimed for its first batches (start-up, autotuning) and
deleted afterwards, so the idle pipeline never runs in the background of the other; measurements
alternate plain/ours, the printed figures are medians and the last line is `ratio X.XX`
(ours / plain).
"""

from __future__ import annotations

import os
import pathlib
import statistics
import sys
import time

from monet_tf.runtime import commandline  # noqa: E402

commandline.prepare(backend=None)  # The quiet console, before TensorFlow loads.

import tensorflow as tf  # noqa: E402
from absl import flags  # noqa: E402

from monet_tf import config as config_lib  # noqa: E402
from monet_tf import data  # noqa: E402

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "gan-getting-started"

flags.DEFINE_string("data_dir", str(SHARED), "Kaggle-layout folder with photo_tfrec/, monet_tfrec/.")
flags.DEFINE_integer("images", 3000, "Photos per timed measurement.")
flags.DEFINE_integer("repeats", 5, "Timed measurements of each pipeline (alternating).")
flags.DEFINE_integer("batch", 32, "Global batch size of both pipelines.")
flags.DEFINE_integer("seed", 0, "Seed of both pipelines.")
FLAGS = flags.FLAGS

FEATURES = {"image": tf.io.FixedLenFeature([], tf.string)}


def plain_dataset(files: list[str], batch: int, seed: int) -> tf.data.Dataset:
    """The tutorial pipeline (TF CycleGAN tutorial's random_jitter on Kaggle's TFRecords)."""
    tf.random.set_seed(seed)

    def load(serialized):
        image = tf.io.decode_jpeg(tf.io.parse_single_example(serialized, FEATURES)["image"],
                                  channels=3)
        image = tf.image.resize(image, [286, 286], method=tf.image.ResizeMethod.NEAREST_NEIGHBOR)
        image = tf.image.random_crop(image, [256, 256, 3])
        image = tf.image.random_flip_left_right(image)
        return tf.cast(image, tf.float32) / 127.5 - 1.0

    ds = tf.data.TFRecordDataset(files).repeat()
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def _pull(iterator, batches: int) -> None:
    for _ in range(batches):
        element = next(iterator)
        first = element[0] if isinstance(element, tuple) else element
        first._numpy()  # noqa: SLF001 - makes sure the batch exists on the host, without a copy


def timed(dataset: tf.data.Dataset, batches: int, drain: int) -> float:
    """Seconds for `batches` batches from a fresh iterator, after `drain` untimed ones (start-up,
    autotuning). The iterator is deleted afterwards, so no pipeline runs while the other is timed."""
    iterator = iter(dataset)
    _pull(iterator, drain)
    start = time.perf_counter()
    _pull(iterator, batches)
    seconds = time.perf_counter() - start
    del iterator
    return seconds


def main(argv: list[str]) -> None:
    del argv
    photo_dir = os.path.join(FLAGS.data_dir, "photo_tfrec")
    if not os.path.isdir(photo_dir):
        print(f"skipped: competition photos not found at {photo_dir} (give --data_dir)")
        sys.exit(0)
    cfg = config_lib.base_config().data
    cfg.data_dir = FLAGS.data_dir
    sources = data.find_sources(cfg.data_dir)
    report = data.validate(sources, min_image_size=cfg.min_image_size,
                           heldout_fraction=cfg.heldout_fraction)
    batches = max(1, FLAGS.images // FLAGS.batch)
    counted = batches * FLAGS.batch
    drain = max(8, 512 // FLAGS.batch)
    print(f"{report.describe()}; {os.cpu_count()} CPUs, TF {tf.__version__}")
    print(f"batch {FLAGS.batch}, {counted} photos per measurement, {FLAGS.repeats} repeats; "
          f"ours: image_size {cfg.image_size}, jitter {cfg.jitter} ({cfg.jitter_scale}x), "
          f"flip {cfg.flip}, cache {cfg.cache}; counting photos only (ours also makes the paintings)")

    # A new dataset per epoch, as monet_tf.training.job does.
    def ours(epoch: int) -> tf.data.Dataset:
        return data.train_dataset(sources, report, cfg, FLAGS.batch, FLAGS.seed + epoch)

    plain = plain_dataset(list(sources.photo.files), FLAGS.batch, FLAGS.seed)
    epoch = data.steps_per_epoch(report, cfg, FLAGS.batch)
    first_rate = epoch * FLAGS.batch / timed(ours(0), epoch, 0)  # Decodes every photo once.
    print(f"ours, first epoch (decode + cache fill, once per run): {first_rate:,.0f} photos/s",
          flush=True)

    times = {"plain": [], "ours": []}
    for r in range(FLAGS.repeats):
        times["plain"].append(timed(plain, batches, drain))
        times["ours"].append(timed(ours(r + 1), batches, drain))
        print(f"repeat {r + 1}: plain {counted / times['plain'][-1]:,.0f} photos/s, "
              f"ours {counted / times['ours'][-1]:,.0f} photos/s", flush=True)
    plain_rate = counted / statistics.median(times["plain"])
    ours_rate = counted / statistics.median(times["ours"])
    print(f"median plain tutorial pipeline (photos only): {plain_rate:,.0f} photos/s")
    print(f"median monet_tf train_dataset, epochs after the first (photo + painting pairs, "
          f"photos counted): {ours_rate:,.0f} photos/s")
    print(f"first epoch of ours / median plain: {first_rate / plain_rate:.2f} (paid once per run)")
    print(f"ratio {ours_rate / plain_rate:.2f}")


if __name__ == "__main__":
    commandline.run(main)
