r"""Translate a folder or TFRecords of images with an exported generator; write JPEGs or images.zip.

    python -m monet_tf.predict --model workdir/export/photo_to_monet \
        --input /kaggle/input/gan-getting-started/photo_tfrec --output images.zip

The model is any SavedModel from monet_tf.export (uint8 [N, H, W, 3] -> uint8), loaded with
TensorFlow alone. Inputs are resized to --image_size when they differ, run in batches through a
tf.data pipeline (read, decode and resize overlap the model; JPEG encoding is parallel inside the
graph), and written as <image name>.jpg into a folder or streamed into a zip. A Kaggle zip must hold
7,000 to 10,000 images: other counts are refused before any work unless --allow_any_count.
"""

import os
import re
import sys
import zipfile
from typing import Callable

import keras
import tensorflow as tf
from absl import app, flags

KAGGLE_MIN_IMAGES, KAGGLE_MAX_IMAGES = 7_000, 10_000
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
TFRECORD_EXTENSIONS = (".tfrec", ".tfrecord", ".tfrecords")
FLAGS = flags.FLAGS  # Flags are defined only when run as a program (see define_flags).


class PredictError(ValueError):
    """Bad input to predict: the message names the path or flag and what is wrong."""


def _list_inputs(spec: str) -> tuple[str, list[str], int]:
    """('images' | 'tfrecord', sorted files, files ignored) for a folder (recursive) or a glob."""
    if not spec:
        raise PredictError("--input is empty: give a folder of JPEG/PNG images or TFRecords")
    if tf.io.gfile.isdir(spec):
        images, records, others = [], [], 0
        for root, _, names in tf.io.gfile.walk(spec):
            for name in names:
                lower = name.lower()
                if lower.endswith(IMAGE_EXTENSIONS):
                    images.append(os.path.join(root, name))
                elif lower.endswith(TFRECORD_EXTENSIONS):
                    records.append(os.path.join(root, name))
                else:
                    others += 1
        if images:
            return "images", sorted(images), others + len(records)
        if records:
            return "tfrecord", sorted(records), 0
        raise PredictError(f"input folder {spec} holds no JPEG/PNG images and no TFRecord files")
    files = sorted(f for f in tf.io.gfile.glob(spec) if not tf.io.gfile.isdir(f))
    if not files:
        raise PredictError(f"input {spec} does not exist or matches no files")
    if all(f.lower().endswith(IMAGE_EXTENSIONS) for f in files):
        return "images", files, 0
    return "tfrecord", files, 0


def _count_records(files: list[str]) -> int:
    """Records in TFRecord files, without parsing them (a few seconds for the 7,038 photos)."""
    dataset = tf.data.TFRecordDataset(files, num_parallel_reads=tf.data.AUTOTUNE)
    try:
        return int(dataset.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))
    except tf.errors.OpError as err:
        raise PredictError(f"cannot read TFRecords {files[0]}...: {err.message}") from err


def _decode(data: tf.Tensor, what: tf.Tensor) -> tf.Tensor:
    """RGB uint8 [H, W, 3] from JPEG/PNG bytes; anything else fails naming `what`."""
    is_png = tf.equal(tf.strings.substr(data, 0, 4), b"\x89PNG")
    check = tf.debugging.Assert(
        tf.logical_or(tf.io.is_jpeg(data), is_png), ["not a JPEG or PNG image:", what]
    )
    with tf.control_dependencies([check]):
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
    return tf.ensure_shape(image, [None, None, 3])


def _read_images(kind: str, files: list[str]) -> tf.data.Dataset:
    """(name, uint8 [H, W, 3]) in a deterministic order; name = file name or record image_name."""
    if kind == "images":
        paths = tf.data.Dataset.from_tensor_slices(files)
        return paths.map(
            lambda p: (p, _decode(tf.io.read_file(p), p)), num_parallel_calls=tf.data.AUTOTUNE
        )
    features = {
        "image_name": tf.io.FixedLenFeature([], tf.string),
        "image": tf.io.FixedLenFeature([], tf.string),
    }

    def parse(record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        example = tf.io.parse_single_example(record, features)
        return example["image_name"], _decode(example["image"], example["image_name"])

    records = tf.data.TFRecordDataset(files)
    return records.map(parse, num_parallel_calls=tf.data.AUTOTUNE)


def _load_model(model_dir: str) -> tuple[object, Callable[[tf.Tensor], tf.Tensor]]:
    """The loaded SavedModel (kept alive by the caller) and its uint8 -> uint8 function."""
    if not model_dir or not tf.io.gfile.isdir(model_dir):
        raise PredictError(f"--model {model_dir!r} is not a folder (expected an exported SavedModel)")
    if not any(
        tf.io.gfile.exists(os.path.join(model_dir, f)) for f in ("saved_model.pb", "saved_model.pbtxt")
    ):
        raise PredictError(
            f"--model {model_dir} is not a SavedModel (no saved_model.pb); export one with "
            "monet_tf.export"
        )
    loaded = tf.saved_model.load(model_dir)
    signature = loaded.signatures.get("serving_default")
    if signature is None:
        raise PredictError(f"--model {model_dir} has no serving_default signature")
    inputs = signature.structured_input_signature[1]
    outputs = signature.structured_outputs
    if len(inputs) != 1 or len(outputs) != 1:
        raise PredictError(
            f"--model {model_dir}: serving_default must take one image tensor and return one, "
            f"got inputs {list(inputs)} and outputs {list(outputs)}"
        )
    (input_name, spec), (output_key,) = next(iter(inputs.items())), list(outputs)
    if spec.dtype != tf.uint8 or spec.shape.rank != 4:
        raise PredictError(
            f"--model {model_dir}: serving_default input {input_name!r} is {spec}; expected uint8 "
            "[N, H, W, 3] images"
        )
    return loaded, lambda images: signature(**{input_name: images})[output_key]


def _op_error_message(err: tf.errors.OpError) -> str:
    """The useful line of a tf.data error (our asserts name the bad file)."""
    failed = re.search(r"assertion failed: \[(.*?)\] \[(.*?)\]", err.message)
    if failed:
        return f"{failed.group(1)} {failed.group(2)}"
    return re.sub(r"\{\{.*?\}\}\s*", "", err.message.strip().splitlines()[0])


class _UniqueNames:
    """'<stem>.jpg' per input name, made unique deterministically ('x.jpg', 'x_1.jpg', ...)."""

    def __init__(self):
        self.used: set[str] = set()

    def __call__(self, raw: bytes) -> str:
        base = os.path.basename(raw.decode("utf-8", errors="replace").replace("\\", "/"))
        stem, ext = os.path.splitext(base)
        if ext.lower() not in IMAGE_EXTENSIONS:
            stem = base
        stem = stem or "image"
        candidate, k = f"{stem}.jpg", 0
        while candidate.lower() in self.used:  # Case-insensitive: zips get unpacked on Windows.
            k += 1
            candidate = f"{stem}_{k}.jpg"
        self.used.add(candidate.lower())
        return candidate


class _FolderWriter:
    def __init__(self, folder: str):
        tf.io.gfile.makedirs(folder)
        self.folder = folder

    def write(self, name: str, data: bytes) -> None:
        with tf.io.gfile.GFile(os.path.join(self.folder, name), "wb") as f:
            f.write(data)

    def close(self, ok: bool) -> None:
        pass


class _ZipWriter:
    """Streams JPEGs into `<path>.partial` (stored, JPEGs do not compress), renamed when done."""

    def __init__(self, path: str):
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise PredictError(f"--output {path}: folder {parent} does not exist")
        self.path, self.partial = path, path + ".partial"
        self.zip = zipfile.ZipFile(self.partial, "w", compression=zipfile.ZIP_STORED)

    def write(self, name: str, data: bytes) -> None:
        self.zip.writestr(name, data)

    def close(self, ok: bool) -> None:
        self.zip.close()
        if ok:
            os.replace(self.partial, self.path)
        else:
            os.remove(self.partial)


def predict(
    model_dir: str,
    input_spec: str,
    output: str,
    batch_size: int = 16,
    allow_any_count: bool = False,
    image_size: int = 256,
    quality: int = 95,
    verbose: bool = True,
) -> int:
    """Translate every input image with the SavedModel at `model_dir`; returns the count written.

    `output` ending in .zip is a Kaggle submission archive (7,000-10,000 images unless
    `allow_any_count`); anything else is a folder of JPEGs.
    """
    if batch_size < 1:
        raise PredictError(f"--batch_size must be at least 1, got {batch_size}")
    if image_size < 4 or image_size % 4:
        raise PredictError(f"--image_size must be a positive multiple of 4, got {image_size}")
    if not 1 <= quality <= 100:
        raise PredictError(f"--quality must be in 1..100, got {quality}")
    if not output:
        raise PredictError("--output is empty: give a folder or a path ending in .zip")
    to_zip = output.lower().endswith(".zip")

    if tf.io.gfile.exists(output) and not to_zip and not tf.io.gfile.isdir(output):
        raise PredictError(f"--output {output} is a file; give a folder or a path ending in .zip")
    if to_zip and tf.io.gfile.isdir(output):
        raise PredictError(f"--output {output} is a folder, not a .zip file")
    kind, files, ignored = _list_inputs(input_spec)
    if ignored and verbose:
        print(f"ignoring {ignored} files in {input_spec} that are not JPEG/PNG images")
    count = len(files) if kind == "images" else _count_records(files)
    if count == 0:
        raise PredictError(f"input {input_spec} holds no images")
    if to_zip and not allow_any_count and not KAGGLE_MIN_IMAGES <= count <= KAGGLE_MAX_IMAGES:
        raise PredictError(
            f"input {input_spec} has {count} images; a Kaggle images.zip needs "
            f"{KAGGLE_MIN_IMAGES:,} to {KAGGLE_MAX_IMAGES:,}. Pass --allow_any_count to write "
            f"{output} anyway"
        )
    loaded, translate = _load_model(model_dir)  # `loaded` owns the variables: keep it alive.

    def resize(name: tf.Tensor, image: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        size = tf.shape(image)[:2]
        image = tf.cond(
            tf.reduce_all(tf.equal(size, image_size)),
            lambda: image,
            lambda: tf.cast(
                tf.clip_by_value(
                    tf.round(tf.image.resize(image, [image_size, image_size], antialias=True)),
                    0,
                    255,
                ),
                tf.uint8,
            ),
        )
        return name, tf.ensure_shape(image, [image_size, image_size, 3])

    dataset = (
        _read_images(kind, files)
        .map(resize, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size)
        .prefetch(2)
    )

    # One trace for every batch, the short last one included.
    @tf.function(input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.uint8)])
    def translate_and_encode(images: tf.Tensor) -> tf.Tensor:
        translated = translate(images)
        return tf.map_fn(
            lambda image: tf.io.encode_jpeg(image, quality=quality),
            translated,
            fn_output_signature=tf.TensorSpec([], tf.string),
            parallel_iterations=batch_size,
        )

    writer = _ZipWriter(output) if to_zip else _FolderWriter(output)
    # Live bar on a terminal; one summary line in logs.
    bar = (1 if sys.stdout.isatty() else 2) if verbose else 0
    progress = keras.utils.Progbar(count, unit_name="image", verbose=bar)
    unique_names = _UniqueNames()
    written, ok = 0, False
    try:
        for names, images in dataset:
            jpegs = translate_and_encode(images).numpy()
            for name, jpeg in zip(names.numpy(), jpegs):
                writer.write(unique_names(name), jpeg)
            written += len(jpegs)
            progress.update(written)
        ok = True
    except tf.errors.OpError as err:
        raise PredictError(f"input {input_spec}: {_op_error_message(err)}") from err
    finally:
        writer.close(ok)
    del loaded  # Only now may the SavedModel's variables go.
    if written != count:
        raise PredictError(f"input {input_spec}: counted {count} images but read {written}")
    return written


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        n = predict(
            FLAGS.model,
            FLAGS.input,
            FLAGS.output,
            batch_size=FLAGS.batch_size,
            allow_any_count=FLAGS.allow_any_count,
            image_size=FLAGS.image_size,
            quality=FLAGS.quality,
        )
    except PredictError as err:
        print(f"monet_tf.predict: error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {n} images to {FLAGS.output}")


def define_flags() -> None:
    flags.DEFINE_string("model", None, "Exported generator (SavedModel folder from monet_tf.export).")
    flags.DEFINE_string("input", None, "Folder of JPEG/PNG images (recursive), or TFRecord dir/glob.")
    flags.DEFINE_string("output", None, "Output folder, or a path ending in .zip for Kaggle.")
    flags.DEFINE_integer("batch_size", 16, "Images per model call.")
    flags.DEFINE_bool("allow_any_count", False, "Write a .zip outside Kaggle's 7,000-10,000 images.")
    flags.DEFINE_integer("image_size", 256, "Output side in pixels; inputs are resized to it.")
    flags.DEFINE_integer("quality", 95, "JPEG quality (1-100).")
    flags.mark_flags_as_required(["model", "input", "output"])


if __name__ == "__main__":
    define_flags()
    app.run(main)
