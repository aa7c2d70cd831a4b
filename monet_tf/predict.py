r"""Translate a folder or TFRecords of images with an exported generator; write JPEGs or images.zip.

    python -m monet_tf.predict --model workdir/export/photo_to_monet \
        --input /kaggle/input/gan-getting-started/photo_tfrec --output images.zip

The model is any SavedModel from monet_tf.export (uint8 [N, H, W, 3] -> uint8), loaded with
TensorFlow alone. Inputs are found, read and decoded by monet_tf.data as training reads a domain,
so a bad file gets the message training's validation gives. They are resized to --image_size when
they differ, run in batches through a tf.data pipeline (read, decode and resize overlap the model;
JPEG encoding is parallel inside the graph), and written as <image name>.jpg into a folder or
streamed into a zip. A Kaggle zip must hold 7,000 to 10,000 images: other counts are refused before
any work unless --allow_any_count.
"""

import dataclasses
import os
import re
import sys
import zipfile
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from monet_tf.data.images import resize_square
from monet_tf.data.sources import IMAGE_EXTENSIONS, DataError, Source, source_from_spec
from monet_tf.data.validate import check_records

KAGGLE_MIN_IMAGES, KAGGLE_MAX_IMAGES = 7_000, 10_000
FLAGS = flags.FLAGS  # Flags are defined only when run as a program (see define_flags).


class PredictError(ValueError):
    """Bad input to predict: the message names the path or flag and what is wrong."""


def _find_inputs(spec: str) -> Source:
    """The input as training finds a domain's data: an image folder (recursive), TFRecords or a
    glob, so the same path means the same files in both."""
    if not spec:
        raise PredictError("--input is empty: give a folder of JPEG/PNG images or TFRecords")
    try:
        source = source_from_spec(spec, "photo", "--input")
    except DataError as err:
        raise PredictError(str(err)) from err
    if source.kind == "tfds":
        raise PredictError(f"--input={spec}: predict reads image folders, TFRecords or globs, "
                           "not TFDS")
    return source


def _bad_input(source: Source, first_file: int, err: tf.errors.OpError) -> PredictError:
    """Training's validation message for the first bad record from `first_file` on; the raw
    TensorFlow error only if validation finds nothing wrong there."""
    try:
        check_records(dataclasses.replace(source, files=source.files[first_file:]))
    except DataError as found:
        return PredictError(str(found))
    return PredictError(f"input {source.spec}: {_op_error_message(err)}")


def _count_images(source: Source) -> int:
    """Images in the input; TFRecords are counted without parsing (seconds for 7,038 photos)."""
    if source.kind == "images":
        return len(source.files)
    dataset = tf.data.TFRecordDataset(list(source.files), num_parallel_reads=tf.data.AUTOTUNE)
    try:
        return int(dataset.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))
    except tf.errors.OpError as err:
        raise _bad_input(source, 0, err) from err


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
    """The useful line of a TensorFlow error."""
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
    plan = check_outputs(input_spec, output, batch_size, allow_any_count, image_size, quality,
                         verbose)
    loaded, translate = _load_model(model_dir)  # `loaded` owns the variables: keep it alive.
    written = write_translations(plan, tf.function(translate), verbose=verbose)
    del loaded  # Only now may the SavedModel's variables go.
    return written


@dataclasses.dataclass
class Plan:
    """Checked arguments of a translation run: where from, where to, how many."""

    source: Source
    input_spec: str
    output: str
    count: int
    batch_size: int
    image_size: int
    quality: int


def check_outputs(input_spec: str, output: str, batch_size: int = 16,
                  allow_any_count: bool = False, image_size: int = 256, quality: int = 95,
                  verbose: bool = True) -> Plan:
    """Every check that needs no model, before any work: arguments, input, output, count."""
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
    source = _find_inputs(input_spec)
    if source.ignored and verbose:
        print(f"ignoring {source.ignored} files in {input_spec} that are not JPEG/PNG images")
    count = _count_images(source)
    if count == 0:
        raise PredictError(f"input {input_spec} holds no images")
    if to_zip and not allow_any_count and not KAGGLE_MIN_IMAGES <= count <= KAGGLE_MAX_IMAGES:
        raise PredictError(
            f"input {input_spec} has {count} images; a Kaggle images.zip needs "
            f"{KAGGLE_MIN_IMAGES:,} to {KAGGLE_MAX_IMAGES:,}. Pass --allow_any_count to write "
            f"{output} anyway"
        )
    if to_zip:
        parent = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(parent):
            raise PredictError(f"--output {output}: folder {parent} does not exist")
    return Plan(source, input_spec, output, count, batch_size, image_size, quality)


def write_translations(plan: Plan, translate: Callable, verbose: bool = True,
                       static_batch: bool = False) -> int:
    """Runs `translate` (uint8 [B, S, S, 3] -> uint8) over the planned input in batches and
    writes <name>.jpg files or the zip; returns the count written.

    static_batch: pad the last batch to batch_size (and drop the padding's outputs), for
    translators compiled for one shape (XLA on TPU, a jitted JAX call).
    """
    size, quality = plan.image_size, plan.quality
    dataset = (
        plan.source.images()
        .map(lambda name, image: (name, resize_square(image, size)),
             num_parallel_calls=tf.data.AUTOTUNE)
        .batch(plan.batch_size)
        .prefetch(2)
    )

    # One trace for every batch, the short last one included; parallel JPEG encoding.
    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8)])
    def encode(images: tf.Tensor) -> tf.Tensor:
        return tf.map_fn(lambda image: tf.io.encode_jpeg(image, quality=quality), images,
                         fn_output_signature=tf.TensorSpec([], tf.string),
                         parallel_iterations=plan.batch_size)

    to_zip = plan.output.lower().endswith(".zip")
    writer = _ZipWriter(plan.output) if to_zip else _FolderWriter(plan.output)
    # Live bar on a terminal; one summary line in logs.
    bar = (1 if sys.stdout.isatty() else 2) if verbose else 0
    progress = keras.utils.Progbar(plan.count, unit_name="image", verbose=bar)
    unique_names = _UniqueNames()
    written, ok = 0, False
    try:
        for names, images in dataset:
            n = int(images.shape[0])
            if static_batch and n < plan.batch_size:
                images = tf.pad(images, [[0, plan.batch_size - n], [0, 0], [0, 0], [0, 0]])
            translated = tf.convert_to_tensor(np.asarray(translate(images))[:n], tf.uint8)
            for name, jpeg in zip(names.numpy(), encode(translated).numpy()):
                writer.write(unique_names(name), jpeg)
            written += n
            progress.update(written)
        ok = True
    except tf.errors.OpError as err:
        # Batches come in file order, so the bad image is at or after the last one written.
        source = plan.source
        raise _bad_input(source, written if source.kind == "images" else 0, err) from err
    finally:
        writer.close(ok)
    if written != plan.count:
        raise PredictError(f"input {plan.input_spec}: counted {plan.count} images but read "
                           f"{written}")
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
