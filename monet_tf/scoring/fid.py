r"""FID, memorization distance and MiFID of generated images, as the competition scores them.

    python -m monet_tf fid --generated images.zip \
        --real /kaggle/input/gan-getting-started/monet_tfrec [--train FOLDER|TFREC_GLOB] [--json]

--generated: a Kaggle images.zip or a folder of JPEG/PNG images (recursive); --real / --train: a
folder, a TFRecord directory or glob (competition schema), or a zip. The training set used for the
memorization distance defaults to the real set. Features are InceptionV3 pool features (see
monet_tf.scoring.inception for --inception_weights). Progress goes to stderr; the scores to stdout
(--json: one JSON object).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import zipfile

import numpy as np
import tensorflow as tf
from absl import flags

from monet_tf.scoring import metrics
from monet_tf.runtime import commandline
from monet_tf.runtime.console import warn
from monet_tf.scoring.inception import InceptionFeatures, InceptionWeightsError

FLAGS = flags.FLAGS

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")  # JPEG, PNG


class FIDError(ValueError):
    """Bad input to the FID CLI: the message names the flag or file and what is wrong."""


def _open(path: str):
    """Local files natively (fast seeks), anything else (gs://) through tf.io.gfile."""
    return open(path, "rb") if os.path.exists(path) else tf.io.gfile.GFile(path, "rb")


def _zip_members(path: str) -> list[str]:
    if not tf.io.gfile.exists(path):
        raise FIDError(f"{path} does not exist")
    try:
        with _open(path) as f, zipfile.ZipFile(f) as archive:
            names = [i.filename for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, ValueError, OSError) as err:
        raise FIDError(f"{path} is not a zip archive ({err})") from err
    images = [n for n in names if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith("__MACOSX/")]
    if not images:
        raise FIDError(f"{path} holds no JPEG/PNG images ({len(names)} other members)")
    if len(images) < len(names):
        warn(f"{path}: skipped {len(names) - len(images)} members that are not JPEG/PNG images")
    return images


def read_zip(path: str) -> tf.data.Dataset:
    """(name, uint8 [H,W,3]) for every JPEG/PNG in a zip (e.g. a Kaggle images.zip), streamed."""
    members = _zip_members(path)

    def generate():
        with _open(path) as f, zipfile.ZipFile(f) as archive:
            for name in members:
                data = archive.read(name)
                if not data.startswith(_MAGIC):
                    raise FIDError(f"{path}: member {name} is not a JPEG or PNG image")
                yield name, data

    dataset = tf.data.Dataset.from_generator(
        generate, output_signature=(tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.string)))

    def decode(name, data):
        image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
        return name, tf.ensure_shape(image, [None, None, 3])

    return dataset.map(decode).apply(tf.data.experimental.assert_cardinality(len(members)))


def read_images(spec: str, flag: str) -> tf.data.Dataset:
    """(name, uint8 image) from a zip (ours) or a folder / TFRecord dir or glob (monet_tf.data)."""
    if not spec:
        raise FIDError(f"--{flag} is empty")
    if spec.lower().endswith(".zip"):
        return read_zip(spec)
    try:
        from monet_tf.data import read_image_files
    except ImportError:  # TEMPORARY until monet_tf.data lands (issue 2).
        return _read_files_fallback(spec, flag)
    return read_image_files(spec)


def _read_files_fallback(spec: str, flag: str) -> tf.data.Dataset:
    if tf.io.gfile.isdir(spec):
        files = sorted(f for f in (tf.io.gfile.join(r, n) for r, _, ns in tf.io.gfile.walk(spec) for n in ns)
                       if f.lower().endswith(IMAGE_EXTENSIONS + (".tfrec", ".tfrecord")))
    else:
        files = sorted(tf.io.gfile.glob(spec))
    if not files:
        raise FIDError(f"--{flag} {spec} does not exist or holds no images")
    decode = lambda data: tf.ensure_shape(tf.io.decode_image(data, 3, expand_animations=False), [None, None, 3])
    if all(f.lower().endswith(IMAGE_EXTENSIONS) for f in files):
        return tf.data.Dataset.from_tensor_slices(files).map(lambda f: (f, decode(tf.io.read_file(f))))
    features = {"image_name": tf.io.FixedLenFeature([], tf.string), "image": tf.io.FixedLenFeature([], tf.string)}
    parse = lambda r: tf.io.parse_single_example(r, features)
    return tf.data.TFRecordDataset(files).map(parse).map(lambda e: (e["image_name"], decode(e["image"])))


def _features(extractor: InceptionFeatures, spec: str, flag: str) -> np.ndarray:
    features = extractor(read_images(spec, flag), progress=f"{flag}: {spec}")
    if len(features) < 2:
        raise FIDError(f"--{flag} {spec} has {len(features)} image; FID needs at least 2")
    return features


def compute_scores(generated: str, real: str, train: str = "", inception_weights: str | None = "imagenet",
                   batch_size: int = 32, strategy: tf.distribute.Strategy | None = None,
                   memorization_threshold: float = metrics.MIFID_EPS) -> dict:
    """Scores of the images at `generated` against `real` (FID) and `train` (memorization)."""
    if batch_size < 1:
        raise FIDError(f"--batch_size must be at least 1, got {batch_size}")
    if memorization_threshold <= 0:
        raise FIDError(f"--memorization_threshold must be positive, got {memorization_threshold}")
    train = train or real
    for flag, spec in (("generated", generated), ("real", real), ("train", train)):
        if not spec:
            raise FIDError(f"--{flag} is empty")
        if spec.lower().endswith(".zip"):
            _zip_members(spec)  # Bad zips fail before Inception is built.
    extractor = InceptionFeatures(inception_weights, strategy=strategy, batch_size=batch_size)
    gen = _features(extractor, generated, "generated")
    real_features = _features(extractor, real, "real")
    train_features = real_features if train == real else _features(extractor, train, "train")
    result = metrics.scores(gen, real_features, train_features, eps=memorization_threshold)
    result.update(
        num_generated=len(gen), num_real=len(real_features), num_train=len(train_features),
        memorization_threshold=memorization_threshold, generated=generated, real=real, train=train,
        inception_weights=inception_weights if inception_weights is not None else "random",
    )
    return result


def format_scores(result: dict) -> str:
    memorised = result["memorization"] < result["memorization_threshold"]
    return "\n".join([
        f"generated      {result['num_generated']:>7} images  {result['generated']}",
        f"real           {result['num_real']:>7} images  {result['real']}",
        f"train          {result['num_train']:>7} images  {result['train']}",
        f"FID            {result['fid']:.6g}",
        f"memorization   {result['memorization']:.6g}  (threshold {result['memorization_threshold']:g}: "
        f"{'MEMORISED, FID is divided by it' if memorised else 'not memorised'})",
        f"MiFID          {result['mifid']:.6g}",
    ])


def main(argv):
    del argv
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Progress bars must not mix with --json.
            result = compute_scores(
                FLAGS.generated, FLAGS.real, FLAGS.train, inception_weights=FLAGS.inception_weights or "imagenet",
                batch_size=FLAGS.batch_size, memorization_threshold=FLAGS.memorization_threshold,
            )
    except (InceptionWeightsError, ValueError) as err:  # FIDError, monet_tf.data.DataError
        commandline.fail(str(err))
    except tf.errors.OpError as err:  # An undecodable image met while streaming.
        commandline.fail(err.message.strip().splitlines()[0])
    print(json.dumps(result, indent=2) if FLAGS.json else format_scores(result))


def define_flags() -> None:
    flags.DEFINE_string("generated", None, "Generated images: a Kaggle images.zip or a folder of JPEG/PNG.")
    flags.DEFINE_string("real", None, "Real Monet images: folder, TFRecord dir/glob, or zip.")
    flags.DEFINE_string("train", "", "Training images for the memorization distance (default: --real).")
    flags.DEFINE_bool("json", False, "Print the scores as one JSON object.")
    flags.DEFINE_string("inception_weights", "",
                        "Local InceptionV3 notop weights (.h5, .weights.h5, .keras); empty: Keras' "
                        "ImageNet weights (cached in ~/.keras/models or downloaded).")
    flags.DEFINE_integer("batch_size", 32, "Images per Inception call (per replica).")
    flags.DEFINE_float("memorization_threshold", metrics.MIFID_EPS,
                       "MiFID's eps: memorization distances below it divide the FID.")
    flags.DEFINE_string("backend", "auto", "Keras backend for Inception: auto | jax | tensorflow "
                        "(auto: KERAS_BACKEND, else tensorflow).")
    flags.mark_flags_as_required(["generated", "real"])
