"""Where the images are: TFRecords, image folders or TFDS, found from a data_dir or given per domain.

Everything here goes through `tf.io.gfile`, so local paths and `gs://` buckets work alike.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import tensorflow as tf

from monet_tf.data import records
from monet_tf.data.images import decode_rgb

KAGGLE_INPUT = "/kaggle/input/gan-getting-started"
SAMPLE_DIR = str(pathlib.Path(__file__).resolve().parents[2] / "tfrecords" / "sample")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
TFRECORD_EXTENSIONS = (".tfrec", ".tfrecord", ".tfrecords")
TFDS_PREFIX = "tfds:"
TFDS_SPLITS = {"monet": "trainA", "photo": "trainB"}  # cycle_gan/monet2photo
DOMAINS = ("monet", "photo")


class DataError(ValueError):
    """Bad input data; the message names the file or flag and what is wrong."""


@dataclasses.dataclass(frozen=True)
class Source:
    """One domain's images: `kind` is tfrecord, images or tfds; `files` sorted (empty for tfds).

    `ignored` counts the other files found under an image folder, so tools can say what they skip.
    """

    domain: str
    kind: str
    spec: str
    files: tuple[str, ...] = ()
    ignored: int = 0

    def describe(self) -> str:
        where = f"{len(self.files)} files" if self.files else self.spec
        return f"{self.domain}: {self.kind} from {self.spec} ({where})"

    def records(self) -> tf.data.Dataset:
        """(name, encoded bytes) in file order; for tfds, (name, uint8 image)."""
        if self.kind == "tfds":
            return _tfds_dataset(self.spec, self.domain)
        if self.kind == "tfrecord":
            return tf.data.TFRecordDataset(list(self.files)).map(records.parse)
        names = [pathlib.Path(f).stem for f in self.files]
        # Parallel reads: one file at a time would be slow on gs://.
        return tf.data.Dataset.from_tensor_slices((names, list(self.files))).map(
            lambda name, path: (name, tf.io.read_file(path)),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def images(self) -> tf.data.Dataset:
        """(name, uint8 [H, W, 3]) in file order, decoded in parallel."""
        if self.kind == "tfds":
            return self.records()
        return self.records().map(lambda name, data: (name, decode_rgb(data)),
                                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


@dataclasses.dataclass(frozen=True)
class DataSources:
    monet: Source
    photo: Source

    def __getitem__(self, domain: str) -> Source:
        return getattr(self, domain)

    def describe(self) -> str:
        return "data:\n  " + "\n  ".join(s.describe() for s in (self.monet, self.photo))


def _is_dir(path: str) -> bool:
    return tf.io.gfile.isdir(path)


def _walk(folder: str, extensions: tuple[str, ...]) -> tuple[list[str], int]:
    """(sorted files under `folder` whose names end in `extensions`, count of the other files)."""
    found, others = [], 0
    for root, _, names in tf.io.gfile.walk(folder):
        for name in names:
            if name.lower().endswith(extensions):
                found.append(os.path.join(root, name))
            else:
                others += 1
    return sorted(found), others


def list_recursive(folder: str, extensions: tuple[str, ...]) -> list[str]:
    """Files under `folder` (local or gs://, any depth) whose names end in `extensions`, sorted."""
    return _walk(folder, extensions)[0]


def source_from_spec(spec: str, domain: str, flag: str) -> Source:
    """A TFRecord dir or glob, an image folder (recursive), a single file, or tfds:NAME."""
    if spec.startswith(TFDS_PREFIX):
        return Source(domain, "tfds", spec[len(TFDS_PREFIX):])
    if _is_dir(spec):
        tfrecords = sorted(f for f in tf.io.gfile.glob(os.path.join(spec, "*"))
                           if f.lower().endswith(TFRECORD_EXTENSIONS))
        if tfrecords:
            return Source(domain, "tfrecord", spec, tuple(tfrecords))
        images, others = _walk(spec, IMAGE_EXTENSIONS)
        if images:
            return Source(domain, "images", spec, tuple(images), others)
        raise DataError(f"{flag}={spec}: the folder has no TFRecords "
                        f"({', '.join(TFRECORD_EXTENSIONS)}) and no images "
                        f"({', '.join(IMAGE_EXTENSIONS)})")
    if any(ch in spec for ch in "*?["):
        # Folders a glob matches are no input; only names without a known extension are checked
        # (one request each on gs://).
        known = IMAGE_EXTENSIONS + TFRECORD_EXTENSIONS
        files = sorted(f for f in tf.io.gfile.glob(spec)
                       if f.lower().endswith(known) or not _is_dir(f))
        if not files:
            raise DataError(f"{flag}={spec}: the glob matches no files")
    elif tf.io.gfile.exists(spec):
        files = [spec]
    else:
        raise DataError(f"{flag}={spec}: no such file or directory")
    kind = "images" if all(f.lower().endswith(IMAGE_EXTENSIONS) for f in files) else "tfrecord"
    return Source(domain, kind, spec, tuple(files))


def _kaggle_layout(data_dir: str, domain: str) -> str | None:
    for sub in (f"{domain}_tfrec", f"{domain}_jpg"):
        path = os.path.join(data_dir, sub)
        if _is_dir(path):
            return path
    return None


def find_sources(data_dir: str = "", monet: str = "", photo: str = "") -> DataSources:
    """Resolves both domains; explicit per-domain specs win over data_dir.

    With neither, the competition data mounted on Kaggle is used when present, else the sample
    bundled in tfrecords/sample.
    """
    if not data_dir and not (monet and photo):
        data_dir = KAGGLE_INPUT if _is_dir(KAGGLE_INPUT) else SAMPLE_DIR
    if data_dir and not _is_dir(data_dir):
        raise DataError(f"--data_dir={data_dir}: no such directory")
    found = {}
    for domain, spec in (("monet", monet), ("photo", photo)):
        flag = f"--config.data.{domain}"
        if not spec:
            spec = _kaggle_layout(data_dir, domain)
            flag = "--data_dir"
            if spec is None:
                raise DataError(
                    f"--data_dir={data_dir}: expected a Kaggle-layout folder with {domain}_tfrec/ "
                    f"or {domain}_jpg/ inside (or give --config.data.{domain})")
        found[domain] = source_from_spec(spec, domain, flag)
    return DataSources(**found)


def _tfds_dataset(name: str, domain: str) -> tf.data.Dataset:
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name)
        prepared = tf.io.gfile.exists(os.path.join(builder.data_dir, "dataset_info.json"))
    except Exception as e:  # noqa: BLE001 - tfds raises many kinds for unknown names
        raise DataError(f"tfds:{name}: not a TFDS dataset ({e})") from None
    if not prepared:
        raise DataError(
            f"tfds:{name}: not prepared in {builder.data_dir}; run "
            f"`tfds build {name}` (or tfds.builder('{name}').download_and_prepare()) first, "
            "or set TFDS_DATA_DIR")
    split = TFDS_SPLITS[domain]
    ds = builder.as_dataset(split=split, shuffle_files=False)
    return ds.enumerate().map(
        lambda i, ex: (tf.strings.format(split + "_{}", i), ex["image"]))


def read_image_files(spec: str, flag: str = "--input") -> tf.data.Dataset:
    """(name, uint8 [H, W, 3]) from a folder (recursive), a TFRecord dir/glob or one file.

    For tools that translate or score arbitrary images (predict, fid); no resizing.
    """
    return source_from_spec(spec, "photo", flag).images()
