r"""Translate a folder or TFRecords of images with an exported generator; write JPEGs or images.zip.

    python -m monet_tf predict --model workdir/export/photo_to_monet \
        --input /kaggle/input/gan-getting-started/photo_tfrec --output images.zip

The model is any SavedModel from monet_tf.inference.export (uint8 [N, H, W, 3] -> uint8), loaded
with TensorFlow alone. Inputs are found, read and decoded by monet_tf.data as training reads a
domain, so a bad file gets the message training's validation gives. They are resized to --image_size
when they differ, run in batches through a tf.data pipeline (read, decode and resize overlap the
model; JPEG encoding is parallel inside the graph), and written as <image name>.jpg into a folder or
streamed into a zip. A Kaggle zip must hold 7,000 to 10,000 images: other counts are refused before
any work unless --allow_any_count.

A noise generator (DCGAN's export/noise_to_monet: float32 noise [N, latent_dim] -> uint8) takes
--count instead of --input and writes that many paintings, 00000.jpg, 00001.jpg, ..., from
standard normal noise drawn with --seed, through the same writers and checks:

    python -m monet_tf predict --model workdir/export/noise_to_monet --count 7000 \
        --output images.zip
"""

import dataclasses
import json
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
from monet_tf.models.dcgan import fixed_noise
from monet_tf.runtime import commandline, disk

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


def _run_generators(workdir: str) -> tuple[str, str, tuple[str, ...]] | None:
    """(model.kind, config.json path, exported generators) of the training run in `workdir`."""
    config = os.path.join(workdir, "config.json")
    if not tf.io.gfile.exists(config):
        return None
    try:
        with tf.io.gfile.GFile(config) as f:
            kind = (json.load(f).get("model") or {}).get("kind", "cyclegan")
        from monet_tf.models.families import model_class

        return kind, config, tuple(model_class(kind).GENERATORS)
    except (ValueError, AttributeError):  # Not a monet_tf config after all: no hint.
        return None


def _missing_export_hint(model_dir: str) -> str | None:
    """Why <workdir>/export[/best]/<name> is missing when that run has no such generator
    (CUT translates one way; a DCGAN translates nothing)."""
    path = os.path.normpath(model_dir)
    name, export = os.path.basename(path), os.path.dirname(path)
    workdir = os.path.dirname(export)
    if os.path.basename(export) == "best":
        workdir = os.path.dirname(workdir)
    found = _run_generators(workdir) if os.path.basename(export) in ("export", "best") else None
    if found is None or name in found[2]:
        return None
    kind, config, generators = found
    head = f"{model_dir} does not exist: this run (model.kind={kind}, {config}) has no {name}; "
    if generators == ("noise_to_monet",):
        return head + ("a DCGAN generates paintings from noise instead of translating: use "
                       f"--model={os.path.join(export, 'noise_to_monet')} with --count=N "
                       "(no --input)")
    if name == "monet_to_photo" and kind in ("cut", "fastcut"):
        return head + ("CUT and FastCUT translate one way, use "
                       f"{os.path.join(export, 'photo_to_monet')}")
    return head + (f"its exported generators are {', '.join(generators)}, use "
                   f"{os.path.join(export, generators[0])}")


@dataclasses.dataclass
class _Model:
    """A loaded export: `run` is its serving function (uint8 images or float32 noise -> uint8
    images); noise_dim is the latent size of a noise generator, None for a translator."""

    path: str
    loaded: object  # Owns the variables: keep it alive while `run` is used.
    run: Callable[[tf.Tensor], tf.Tensor]
    noise_dim: int | None


def _check_model_dir(model_dir: str) -> None:
    """The cheap checks of --model, before any other work: a SavedModel folder is there."""
    if not model_dir or not tf.io.gfile.isdir(model_dir):
        hint = _missing_export_hint(model_dir) if model_dir else None
        if hint:
            raise PredictError(hint)
        raise PredictError(f"--model {model_dir!r} is not a folder (expected an exported SavedModel)")
    if not any(
        tf.io.gfile.exists(os.path.join(model_dir, f)) for f in ("saved_model.pb", "saved_model.pbtxt")
    ):
        raise PredictError(
            f"--model {model_dir} is not a SavedModel (no saved_model.pb); export one with "
            "monet-tf export"
        )


def _load_model(model_dir: str) -> _Model:
    """The SavedModel at `model_dir`, a translator or a noise generator by its signature."""
    _check_model_dir(model_dir)
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
    noise = spec.dtype == tf.float32 and spec.shape.rank == 2 and spec.shape[1] is not None
    if not noise and (spec.dtype != tf.uint8 or spec.shape.rank != 4):
        raise PredictError(
            f"--model {model_dir}: serving_default input {input_name!r} is {spec}; expected uint8 "
            "[N, H, W, 3] images (a translator) or float32 [N, latent_dim] noise (a noise "
            "generator)"
        )
    return _Model(model_dir, loaded, lambda x: signature(**{input_name: x})[output_key],
                  int(spec.shape[1]) if noise else None)


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
        if ok:
            self.zip.close()
            os.replace(self.partial, self.path)
            return
        try:
            self.zip.close()  # Closes the file even when its last write fails (a full disk).
        except OSError:
            pass
        os.remove(self.partial)


def predict(
    model_dir: str,
    input_spec: str | None,
    output: str,
    batch_size: int = 16,
    allow_any_count: bool = False,
    image_size: int = 256,
    quality: int = 95,
    verbose: bool = True,
    count: int | None = None,
    seed: int = 0,
) -> int:
    """Translate every input image with the SavedModel at `model_dir`, or (a noise generator)
    write `count` generated images from noise drawn with `seed`; returns the count written.

    `output` ending in .zip is a Kaggle submission archive (7,000-10,000 images unless
    `allow_any_count`); anything else is a folder of JPEGs. A missing --model is reported
    first (with the export to use instead when its run has another), then the checks that need
    no model; a translator given --count, or a noise generator given --input, is refused by name.
    """
    if input_spec and count is not None:
        raise PredictError("--input and --count exclude each other: --input is what a translator "
                           "translates, --count how many images a noise generator writes")
    _check_model_dir(model_dir)
    if count is not None:
        plan = check_generation(output, count, batch_size, allow_any_count, image_size, quality,
                                seed)
    elif input_spec:
        plan = check_outputs(input_spec, output, batch_size, allow_any_count, image_size,
                             quality, verbose)
    model = _load_model(model_dir)
    if model.noise_dim is None:
        if count is not None:
            raise PredictError(f"--count: {model_dir} translates images (uint8 [N, H, W, 3] in), "
                               "it does not generate them; give --input instead")
        if not input_spec:
            raise PredictError(f"--input is missing: {model_dir} translates images; give a folder "
                               "of JPEG/PNG images or TFRecords")
        written = write_translations(plan, tf.function(model.run), verbose=verbose)
    else:
        if input_spec:
            raise PredictError(f"--input: {model_dir} generates images from noise (float32 [N, "
                               f"{model.noise_dim}] in), it translates nothing; give --count=N "
                               "instead")
        if count is None:
            raise PredictError(f"--count is missing: {model_dir} generates images from noise; "
                               "give --count=N, how many to write")
        written = write_generated(plan, tf.function(model.run), model.noise_dim, verbose=verbose)
    del model  # Only now may the SavedModel's variables go.
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


@dataclasses.dataclass
class GenerationPlan:
    """Checked arguments of a generation run: how many images, where to, from which noise."""

    output: str
    count: int
    batch_size: int
    image_size: int
    quality: int
    seed: int


def _check_settings(output: str, batch_size: int, image_size: int, quality: int) -> None:
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


def _check_count(what: str, count: int, output: str, allow_any_count: bool) -> None:
    """A Kaggle zip's 7,000-10,000 images, and the zip's folder; `what` names the count."""
    if not output.lower().endswith(".zip"):
        return
    if not allow_any_count and not KAGGLE_MIN_IMAGES <= count <= KAGGLE_MAX_IMAGES:
        raise PredictError(
            f"{what} {count} images; a Kaggle images.zip needs "
            f"{KAGGLE_MIN_IMAGES:,} to {KAGGLE_MAX_IMAGES:,}. Pass --allow_any_count to write "
            f"{output} anyway"
        )
    parent = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(parent):
        raise PredictError(f"--output {output}: folder {parent} does not exist")


def check_outputs(input_spec: str, output: str, batch_size: int = 16,
                  allow_any_count: bool = False, image_size: int = 256, quality: int = 95,
                  verbose: bool = True) -> Plan:
    """Every check that needs no model, before any work: arguments, input, output, count."""
    _check_settings(output, batch_size, image_size, quality)
    source = _find_inputs(input_spec)
    if source.ignored and verbose:
        print(f"ignoring {source.ignored} files in {input_spec} that are not JPEG/PNG images")
    count = _count_images(source)
    if count == 0:
        raise PredictError(f"input {input_spec} holds no images")
    _check_count(f"input {input_spec} has", count, output, allow_any_count)
    return Plan(source, input_spec, output, count, batch_size, image_size, quality)


def check_generation(output: str, count: int, batch_size: int = 16,
                     allow_any_count: bool = False, image_size: int = 256, quality: int = 95,
                     seed: int = 0, count_flag: str = "--count") -> GenerationPlan:
    """check_outputs for a noise generator: `count` (given as `count_flag`) replaces the
    input's image count."""
    _check_settings(output, batch_size, image_size, quality)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise PredictError(f"{count_flag} must be a positive number of images, got {count!r}")
    _check_count(f"{count_flag}={count} asks for", count, output, allow_any_count)
    return GenerationPlan(output, count, batch_size, image_size, quality, int(seed))


def write_translations(plan: Plan, translate: Callable, verbose: bool = True,
                       static_batch: bool = False) -> int:
    """Runs `translate` (uint8 [B, S, S, 3] -> uint8) over the planned input in batches and
    writes <name>.jpg files or the zip; returns the count written.

    static_batch: pad the last batch to batch_size (and drop the padding's outputs), for
    translators compiled for one shape (XLA on TPU, a jitted JAX call).
    """
    size = plan.image_size
    dataset = (
        plan.source.images()
        .map(lambda name, image: (name, resize_square(image, size)),
             num_parallel_calls=tf.data.AUTOTUNE)
        .batch(plan.batch_size)
        .prefetch(2)
    )
    writer = _JpegWriter(plan.output, plan.count, size, plan.quality, plan.batch_size, verbose)
    unique_names = _UniqueNames()
    ok = False
    try:
        with writer.full_disk():
            for names, images in dataset:
                n = int(images.shape[0])
                if static_batch and n < plan.batch_size:
                    images = tf.pad(images, [[0, plan.batch_size - n], [0, 0], [0, 0], [0, 0]])
                writer.write([unique_names(name) for name in names.numpy()],
                             np.asarray(translate(images))[:n])
        ok = True
    except tf.errors.OpError as err:
        # Batches come in file order, so the bad image is at or after the last one written.
        source = plan.source
        raise _bad_input(source, writer.written if source.kind == "images" else 0, err) from err
    finally:
        writer.close(ok)
    if writer.written != plan.count:
        raise PredictError(f"input {plan.input_spec}: counted {plan.count} images but read "
                           f"{writer.written}")
    return writer.written


def write_generated(plan: GenerationPlan, generate: Callable, noise_dim: int,
                    verbose: bool = True, static_batch: bool = False) -> int:
    """Runs `generate` (float32 noise [B, noise_dim] -> uint8 [B, S, S, 3]) on plan.count noise
    vectors (models.dcgan.fixed_noise) in batches and writes 00000.jpg, 00001.jpg, ... into the folder
    or the zip, resized to plan.image_size when S differs; returns the count written.

    static_batch: as for write_translations.
    """
    noise = fixed_noise(plan.count, noise_dim, plan.seed)
    digits = max(5, len(str(plan.count - 1)))
    writer = _JpegWriter(plan.output, plan.count, plan.image_size, plan.quality,
                         plan.batch_size, verbose)
    ok = False
    try:
        with writer.full_disk():
            for start in range(0, plan.count, plan.batch_size):
                batch = noise[start : start + plan.batch_size]
                n = len(batch)
                if static_batch and n < plan.batch_size:
                    batch = np.pad(batch, [[0, plan.batch_size - n], [0, 0]])
                writer.write([f"{i:0{digits}d}.jpg" for i in range(start, start + n)],
                             np.asarray(generate(tf.constant(batch)))[:n])
        ok = True
    finally:
        writer.close(ok)
    return writer.written


class _JpegWriter:
    """uint8 [B, S, S, 3] batches as JPEGs of image_size into a folder or a streamed zip, with
    a progress bar; the JPEGs are encoded in parallel inside the graph."""

    def __init__(self, output: str, count: int, image_size: int, quality: int,
                 batch_size: int, verbose: bool):
        size = image_size

        # One trace for every batch, the short last one included (no Python control flow:
        # autograph would only fail to parse the lambda's source and warn).
        @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8)],
                     autograph=False)
        def encode(images: tf.Tensor) -> tf.Tensor:
            return tf.map_fn(lambda image: tf.io.encode_jpeg(image, quality=quality), images,
                             fn_output_signature=tf.TensorSpec([], tf.string),
                             parallel_iterations=batch_size)

        self.size, self.encode = size, encode
        self.output, self.count = output, count
        self.to_zip = output.lower().endswith(".zip")
        self.sink = _ZipWriter(output) if self.to_zip else _FolderWriter(output)
        self.jpeg_bytes = self.jpegs = 0
        self.closed = False
        # Live bar on a terminal; one summary line in logs.
        bar = (1 if sys.stdout.isatty() else 2) if verbose else 0
        self.progress = keras.utils.Progbar(count, unit_name="image", verbose=bar)
        self.written = 0

    def write(self, names: list[str], images: np.ndarray) -> None:
        images = tf.convert_to_tensor(images, tf.uint8)
        if tuple(images.shape[1:3]) != (self.size, self.size):  # A generator's own size.
            resized = tf.image.resize(images, [self.size, self.size], method="bilinear",
                                      antialias=True)
            images = tf.cast(tf.round(tf.clip_by_value(resized, 0, 255)), tf.uint8)
        jpegs = self.encode(images).numpy()
        self.jpeg_bytes += sum(len(jpeg) for jpeg in jpegs)
        self.jpegs += len(jpegs)
        for name, jpeg in zip(names, jpegs):
            self.sink.write(name, jpeg)
        self.written += len(names)
        self.progress.update(self.written)

    def full_disk(self):
        """A full disk as DiskFull, sized by the JPEGs so far; a zip's partial file removed (a
        folder's images are left, beside what else it holds)."""
        def needed() -> int | None:
            return int(self.jpeg_bytes / self.jpegs * self.count) if self.jpegs else None

        return disk.writing(self.output, needed, "the images",
                            cleanup=(lambda: self.close(False)) if self.to_zip else None)

    def close(self, ok: bool) -> None:
        if not self.closed:
            self.closed = True
            self.sink.close(ok)


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
            count=FLAGS.count,
            seed=FLAGS.seed,
        )
    except PredictError as err:
        commandline.fail(str(err))
    print(f"wrote {n} images to {FLAGS.output}")


def define_flags() -> None:
    flags.DEFINE_string("model", None, "Exported generator (SavedModel folder from "
                        "monet_tf.inference.export).")
    flags.DEFINE_string("input", None, "Folder of JPEG/PNG images (recursive), or TFRecord "
                        "dir/glob, to translate (a translator's --model).")
    flags.DEFINE_integer("count", None, "Images to generate (a noise generator's --model, e.g. "
                         "export/noise_to_monet of a dcgan run); replaces --input.")
    flags.DEFINE_integer("seed", 0, "Seeds the noise of --count's images.")
    flags.DEFINE_string("output", None, "Output folder, or a path ending in .zip for Kaggle.")
    flags.DEFINE_integer("batch_size", 16, "Images per model call.")
    flags.DEFINE_bool("allow_any_count", False, "Write a .zip outside Kaggle's 7,000-10,000 images.")
    flags.DEFINE_integer("image_size", 256, "Output side in pixels; inputs are resized to it.")
    flags.DEFINE_integer("quality", 95, "JPEG quality (1-100).")
    flags.mark_flags_as_required(["model", "output"])
