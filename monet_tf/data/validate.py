"""One pass over every record before training: counts, bad records, and the held-out split.

The fast path decodes each file in parallel with tf.data; only a file that fails is rescanned
record by record, to name the exact record (or, with skip_bad_records, to count what is skipped).
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import tensorflow as tf
from monet_tf.runtime.console import warn
from monet_tf.data.images import decode_rgb
from monet_tf.data.sources import DataError, DataSources, Source

HASH_BUCKETS = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class DomainReport:
    count: int  # usable images
    skipped: int  # bad records skipped (skip_bad_records)
    bad: frozenset  # (file, index) of records to skip
    heldout_below: int  # names hashing below this are held out of training (-1: none)
    heldout_count: int
    unreadable_from: frozenset = frozenset()  # (file, index): a truncated file is read up to here
    # Training images (usable, not held out) per file, in the source's file order (TFDS: one
    # entry): where each process's part of the data set begins and ends.
    per_file: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class DataReport:
    monet: DomainReport
    photo: DomainReport

    def __getitem__(self, domain: str) -> DomainReport:
        return getattr(self, domain)

    def describe(self) -> str:
        return (f"monet: {self.monet.count} images ({self.monet.skipped} skipped); "
                f"photo: {self.photo.count} images ({self.photo.skipped} skipped, "
                f"{self.photo.heldout_count} held out)")


def name_hash(names: tf.Tensor) -> tf.Tensor:
    """A stable hash of image names (FarmHash), the same in the scan and in the pipeline."""
    return tf.strings.to_hash_bucket_fast(names, HASH_BUCKETS)


def _shape_of(data: tf.Tensor) -> tf.Tensor:
    if data.dtype == tf.uint8:
        return tf.shape(data)[:2]
    return tf.shape(decode_rgb(data))[:2]


def _fast_scan(source: Source, files) -> tuple[list[bytes], np.ndarray]:
    ds = source.records() if files is None else type(source)(
        source.domain, source.kind, source.spec, tuple(files)).records()
    ds = ds.map(lambda name, data: (name, _shape_of(data)),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    names, shapes = [], []
    for name_batch, shape_batch in ds.batch(1024):
        names += list(name_batch.numpy())
        shapes.append(shape_batch.numpy())
    return names, (np.concatenate(shapes) if shapes else np.zeros([0, 2], np.int32))


def _reason(error: tf.errors.OpError) -> str:
    """TensorFlow's own words for what is wrong, without the op and device decorations."""
    message = re.sub(r"\{\{.*?\}\}\s*", "", error.message).split(";")[0]
    return re.sub(r"\s*\[Op:\w+\].*$", "", message, flags=re.S).strip()


def _slow_scan(source: Source, path: str, min_size: int, skip: bool):
    """Record by record through one file: (names, bad (path, index) pairs, the index from which
    the file cannot be read or None)."""
    names, bad = [], []
    one = Source(source.domain, source.kind, source.spec, (path,))
    iterator = iter(one.records())
    index = 0
    while True:
        try:
            name, data = next(iterator)
        except StopIteration:
            break
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
            what = (f"{path}: record {index} is unreadable (truncated or not a TFRecord): "
                    f"{_reason(e)}")
            if not skip:
                raise DataError(what) from None
            warn(f"skipping the rest of {path} from record {index}: {e.message}")
            bad.append((path, index))
            return names, bad, index
        try:
            height, width = _shape_of(data).numpy()
        except tf.errors.InvalidArgumentError as e:
            problem = f"record {index} ({name.numpy().decode()}) is not a decodable image: " \
                      f"{_reason(e)}"
        else:
            problem = None
            if min(height, width) < min_size:
                problem = (f"record {index} ({name.numpy().decode()}) is {width}x{height} px, "
                           f"under the minimum of {min_size} px (--config.data.min_image_size)")
        if problem:
            if not skip:
                raise DataError(f"{path}: {problem}")
            bad.append((path, index))
        else:
            names.append(name.numpy())
        index += 1
    return names, bad, None


def _scan(source: Source, min_size: int, skip: bool) -> tuple[list[list[bytes]], list, list]:
    """(usable names per file, bad (path, index) pairs, (path, index) where truncated files
    end)."""
    if source.kind == "tfds":
        names, shapes = _fast_scan(source, None)
        small = np.flatnonzero(shapes.min(axis=1) < min_size) if len(shapes) else []
        if len(small) and not skip:
            raise DataError(f"tfds:{source.spec}: image {small[0]} is under {min_size} px")
        return [[n for i, n in enumerate(names) if i not in set(small)]], [
            (source.spec, int(i)) for i in small], []
    per_file, all_bad, unreadable = [], [], []
    for path in source.files:
        try:
            names, shapes = _fast_scan(source, [path])
            if len(shapes) and shapes.min() < min_size:
                raise tf.errors.InvalidArgumentError(None, None, "too small")
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError):
            names, bad, cut = _slow_scan(source, path, min_size, skip)
            all_bad += bad
            if cut is not None:
                unreadable.append((path, cut))
        per_file.append(names)
    return per_file, all_bad, unreadable


def check_records(source: Source, min_image_size: int = 1) -> None:
    """Raises the DataError validate would for the first bad record of `source`, if it has one.

    For tools that stream the data without validating it first (predict) and hit a decode error
    mid-run: their message then names the file and record exactly as training's does.
    """
    _scan(source, min_image_size, skip=False)


def heldout_threshold(names: list[bytes], fraction: float) -> tuple[int, int]:
    """The hash value below which the lowest-hashing `fraction` of names fall (at least 1, and
    never all of them)."""
    if fraction <= 0 or len(names) < 2:
        return -1, 0
    hashes = np.sort(name_hash(tf.constant(names)).numpy())
    k = min(max(1, int(round(fraction * len(names)))), len(names) - 1)
    return int(hashes[k - 1]) + 1, int(np.sum(hashes < hashes[k - 1] + 1))


def validate(sources: DataSources, min_image_size: int = 64, skip_bad_records: bool = False,
             heldout_fraction: float = 0.0) -> DataReport:
    """Decodes every image once; raises DataError naming file and record, or counts skips."""
    reports = {}
    for domain in ("monet", "photo"):
        source = sources[domain]
        per_file, bad, unreadable = _scan(source, min_image_size, skip_bad_records)
        names = [name for names in per_file for name in names]
        if not names:
            raise DataError(f"{source.describe()}: no usable images")
        if bad:
            print(f"warning: {domain}: skipped {len(bad)} bad record(s): "
                  + ", ".join(f"{p}#{i}" for p, i in bad[:5]) + (" ..." if len(bad) > 5 else ""),
                  flush=True)
        below, held = heldout_threshold(names, heldout_fraction if domain == "photo" else 0.0)
        training = [len(names) if below < 0 or not names else
                    int(np.sum(name_hash(tf.constant(names)).numpy() >= below))
                    for names in per_file]
        reports[domain] = DomainReport(len(names), len(bad), frozenset(bad), below, held,
                                       frozenset(unreadable), tuple(training))
    return DataReport(**reports)
