"""The training pipeline: both domains decoded once, cached, shuffled and repeated on their own.

Photos and paintings are repeated independently before they are zipped, so the 300 paintings
never cut an epoch short (an epoch is `steps_per_epoch` batches, by default one pass over the
training photos). Augmentation uses stateless random ops seeded by (seed, element index), so the
same seed gives the same batches however many threads decode them.

Training builds a new dataset every epoch (its seed depends on the epoch); the decoded images are
cached once per process and shared by those datasets, so each image is decoded once per run, not
once per epoch.

A run of several processes gives each its own contiguous part of each domain (`host_share`):
whole files where the boundaries allow, a slice of a file where not, the parts' sizes differing
by one image at most. A process reads, decodes and caches its part only, and its batches are its
share of every global batch: in an epoch no image is seen twice across the processes, and no
more are left out than one process would leave out (fewer than a global batch).
"""

from __future__ import annotations

import collections
import functools
import os

import ml_collections
import numpy as np
import tensorflow as tf

from monet_tf.data.images import decode_rgb, resize_square, to_float
from monet_tf.data.sources import DataError, DataSources, Source
from monet_tf.data.validate import DataReport, DomainReport, name_hash


def _without(ds: tf.data.Dataset, indices) -> tf.data.Dataset:
    """`ds` without the elements at `indices`."""
    if not indices:
        return ds
    drop = tf.constant(sorted(indices), tf.int64)
    ds = ds.enumerate().filter(lambda i, record: tf.logical_not(tf.reduce_any(tf.equal(i, drop))))
    return ds.map(lambda i, record: record)


def usable_records(source: Source, report: DomainReport, files=None) -> tf.data.Dataset:
    """(name, image) records of the source (of `files` of it only) without the ones validation
    marked bad."""
    if files is not None:
        source = Source(source.domain, source.kind, source.spec, tuple(files))
    if not report.bad:
        return source.records()
    if source.kind == "images":
        keep = tuple(f for f in source.files if (f, 0) not in report.bad)
        return Source(source.domain, source.kind, source.spec, keep).records()
    if source.kind == "tfds":
        return _without(source.records(), [i for _, i in report.bad])
    readable = dict(report.unreadable_from)  # A truncated file is read only up to the cut.

    def part(path):
        ds = Source(source.domain, source.kind, source.spec, (path,)).records()
        if path in readable:
            ds = ds.take(readable[path])
        return _without(ds, [i for p, i in report.bad if p == path and i != readable.get(path)])

    return functools.reduce(tf.data.Dataset.concatenate, map(part, source.files))


def host_share(per_file: tuple[int, ...], index: int, count: int) -> list[tuple[int, int, int]]:
    """Process `index` of `count`'s contiguous part of the training images whose per-file counts
    are `per_file`: (file position, first image in the file, images) for each file it reads."""
    bounds = np.cumsum([0, *per_file])
    total = int(bounds[-1])
    low, high = total * index // count, total * (index + 1) // count
    return [(f, int(max(low, start) - start), int(min(high, end) - max(low, start)))
            for f, (start, end) in enumerate(zip(bounds[:-1], bounds[1:]))
            if max(low, start) < min(high, end)]


def share_size(report: DomainReport, index: int, count: int) -> int:
    total = sum(report.per_file)
    return total * (index + 1) // count - total * index // count


def _split(ds: tf.data.Dataset, report: DomainReport, heldout: bool | None) -> tf.data.Dataset:
    """heldout=True/False keeps only that side of the held-out split."""
    if heldout is None or report.heldout_below < 0:
        return ds
    below = tf.constant(report.heldout_below, tf.int64)
    return ds.filter(lambda name, data: tf.equal(name_hash(name) < below, heldout))


def _decoded(source: Source, report: DomainReport, size: int, heldout: bool | None,
             host: tuple[int, int] = (0, 1)):
    """(name, uint8 [size, size, 3]); heldout=True/False keeps only that side of the split;
    `host` (index, count): that process's part of the training images (heldout=False)."""
    index, count = host
    if count == 1:
        ds = _split(usable_records(source, report), report, heldout)
    else:
        def part(position, first, images):
            files = source.files[position:position + 1] if source.files else None
            return _split(usable_records(source, report, files), report, heldout).skip(
                first).take(images)

        ds = functools.reduce(tf.data.Dataset.concatenate,
                              [part(*piece) for piece in host_share(report.per_file, *host)])

    def to_image(name, data):
        image = data if data.dtype == tf.uint8 else decode_rgb(data)
        return name, resize_square(image, size)

    return ds.map(to_image, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def train_photo_count(report: DataReport) -> int:
    return report.photo.count - report.photo.heldout_count


def steps_per_epoch(report: DataReport, cfg: ml_collections.ConfigDict, global_batch: int,
                    domain: str = "photo") -> int:
    """cfg.steps_per_epoch, or (0) one pass over the training images of `domain`: the photos,
    or the paintings for a family that trains on them alone (dcgan)."""
    if cfg.steps_per_epoch > 0:
        return int(cfg.steps_per_epoch)
    count = train_photo_count(report) if domain == "photo" else report.monet.count
    return max(1, count // global_batch)


def jitter_size(cfg: ml_collections.ConfigDict) -> int:
    return int(cfg.image_size * cfg.jitter_scale) if cfg.jitter else cfg.image_size


def augment(image: tf.Tensor, seed: tf.Tensor, cfg: ml_collections.ConfigDict) -> tf.Tensor:
    """uint8 [S, S, 3] -> float32 [-1, 1]: jitter (upscale, random crop) and flip, by config."""
    size = cfg.image_size
    image = tf.cast(image, tf.float32)
    if cfg.jitter:
        big = jitter_size(cfg)
        image = tf.image.resize(image, [big, big], method="bilinear")
        image = tf.image.stateless_random_crop(image, [size, size, 3], seed=seed)
    if cfg.flip:
        image = tf.image.stateless_random_flip_left_right(image, seed=seed + 1)
    return tf.ensure_shape(image / 127.5 - 1.0, [size, size, 3])


# The decoded images of the latest run's two domains. A tf.data in-memory cache belongs to its
# dataset object and, once one iterator has read it to the end, serves every later iterator of any
# dataset built on it; keeping the object lets each epoch's new train_dataset reuse it.
_CACHED: collections.OrderedDict = collections.OrderedDict()
_CACHED_MAX = 2


def _local_fingerprint(source: Source) -> tuple:
    """Sizes and modification times of local files, so a file rewritten in place is read again
    (remote files are trusted by name: a stat per file per epoch would be slow on gs://)."""
    if any("://" in f for f in source.files):
        return ()
    return tuple((st.st_size, st.st_mtime_ns) for st in map(os.stat, source.files))


def _images(source: Source, report: DomainReport, size: int, heldout: bool | None,
            cache: bool, host: tuple[int, int] = (0, 1)) -> tf.data.Dataset:
    """uint8 [size, size, 3] images in file order; with `cache`, decoded once per process."""
    def build():
        ds = _decoded(source, report, size, heldout, host).map(lambda name, image: image)
        return ds.cache() if cache else ds

    if not (cache and tf.executing_eagerly()):
        return build()
    key = (source, report, size, heldout, host, _local_fingerprint(source))
    if key not in _CACHED:
        _CACHED[key] = build()
        while len(_CACHED) > _CACHED_MAX:
            _CACHED.popitem(last=False)
    _CACHED.move_to_end(key)
    return _CACHED[key]


def _shuffled_forever(ds: tf.data.Dataset, count: int, cfg, seed: int) -> tf.data.Dataset:
    return ds.shuffle(max(1, min(cfg.shuffle_buffer, count)), seed=seed,
                      reshuffle_each_iteration=True).repeat()


PHOTO_PLACEHOLDER = (1, 1, 3)  # The photo of a pair for a family that trains on paintings alone.


def train_batch_shapes(image_size: int, global_batch: int, photos: bool = True):
    """The static (photo, monet) shapes of train_dataset's batches, both float32."""
    monet = (global_batch, image_size, image_size, 3)
    return (monet if photos else (global_batch, *PHOTO_PLACEHOLDER)), monet


def train_dataset(sources: DataSources, report: DataReport, cfg: ml_collections.ConfigDict,
                  global_batch: int, seed: int, photos: bool = True,
                  host: tuple[int, int] = (0, 1)) -> tf.data.Dataset:
    """Infinite (photo, monet) batches, float32 [-1, 1], static shape [B, S, S, 3]: B is the
    global batch, or with `host` (index, count of the run's processes) that process's share of
    it, global_batch / count, from its own part of each domain.

    photos=False (a family that ignores them: dcgan): the photo of each pair is a zero
    [1, 1, 3] placeholder, so no photo is decoded, augmented or sent to the devices, and the
    step still gets the (photo, monet) batches every family's step takes.
    """
    size = cfg.image_size
    index, count = host
    for domain in ("monet", "photo") if photos else ("monet",):
        if count > 1 and share_size(report[domain], 0, count) < 1:
            raise DataError(f"{domain}: {sum(report[domain].per_file)} training images for "
                            f"{count} processes: each process needs at least one")
    if global_batch % count:
        raise DataError(f"the global batch of {global_batch} does not split over {count} "
                        "processes")
    monets = _shuffled_forever(
        _images(sources.monet, report.monet, size, None, cfg.cache, host),
        report.monet.count if count == 1 else share_size(report.monet, index, count), cfg,
        seed + 1)
    base = tf.constant([seed, 0], tf.int64)
    if photos:
        pairs = tf.data.Dataset.zip(
            _shuffled_forever(_images(sources.photo, report.photo, size, False, cfg.cache, host),
                              train_photo_count(report) if count == 1 else
                              share_size(report.photo, index, count), cfg, seed),
            monets)
    else:
        pairs = monets.map(lambda monet: (tf.zeros(PHOTO_PLACEHOLDER, tf.uint8), monet))

    def augment_pair(position, pair):
        # Element `position` of process `index` is the run's pair position * count + index:
        # every pair of the run draws its own augmentation.
        photo, monet = pair
        key = base + tf.stack([tf.constant(0, tf.int64), 4 * (position * count + index)])
        photo = augment(photo, key, cfg) if photos else tf.cast(photo, tf.float32)
        return photo, augment(monet, key + [0, 2], cfg)

    ds = pairs.enumerate().map(augment_pair, num_parallel_calls=tf.data.AUTOTUNE,
                               deterministic=True)
    ds = ds.batch(global_batch // count, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def heldout_photos(sources: DataSources, report: DataReport, cfg: ml_collections.ConfigDict,
                   n: int) -> tf.data.Dataset:
    """The first n held-out photos (all photos if none are held out), float32 [-1, 1], unbatched."""
    heldout = True if report.photo.heldout_count else None
    ds = _decoded(sources.photo, report.photo, cfg.image_size, heldout=heldout)
    return ds.take(n).map(lambda name, image: to_float(image))


def eval_images(sources: DataSources, report: DataReport, domain: str,
                cfg: ml_collections.ConfigDict, n: int) -> tf.data.Dataset:
    """The first n images of a domain, unaugmented, float32 [-1, 1], unbatched."""
    ds = _decoded(sources[domain], report[domain], cfg.image_size, heldout=None)
    return ds.take(n).map(lambda name, image: to_float(image))
