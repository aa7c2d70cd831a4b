"""The Kaggle submission at the end of a run: every photo through photo_to_monet (or, for a
family that generates from noise, submission.count paintings from noise_to_monet), on the devices
the run trained on, into images.zip (7,000-10,000 JPEGs of 256x256).

Batches are translated where the model lives: under the tf.distribute strategy (each replica
takes its slice of the batch) or as one jitted JAX call sharded over the devices, with a fixed
batch shape so XLA compiles once. Reading, resizing, JPEG encoding and the zip are
monet_tf.inference.predict's, so the archive is the one `python -m monet_tf predict` writes.
"""

from __future__ import annotations

import dataclasses
import io
import os
import time
import zipfile

import keras
import numpy as np
import tensorflow as tf

from monet_tf.inference import predict
from monet_tf.inference.export import inference_copy, is_noise_generator
from monet_tf.runtime.translate import jax_program, translate

KAGGLE_WORKING = "/kaggle/working"
SIZE = 256


class SubmissionError(RuntimeError):
    """The submission zip is not what Kaggle accepts; the message says what is wrong."""


def on_kaggle() -> bool:
    """Inside a Kaggle notebook (its kernels set KAGGLE_KERNEL_RUN_TYPE)."""
    return bool(os.environ.get("KAGGLE_KERNEL_RUN_TYPE")) and os.path.isdir(KAGGLE_WORKING)


def resolve_path(setting: str) -> str | None:
    """submission.path: "" none, "auto" the Kaggle working folder's images.zip on Kaggle."""
    if setting == "auto":
        return os.path.join(KAGGLE_WORKING, "images.zip") if on_kaggle() else None
    return setting or None


def jax_translate_step(generator: keras.Model):
    """The submission's JAX program: (trainable, non_trainable, inputs) -> uint8, jitted. Inputs
    are uint8 images, or float32 noise for a noise generator. `monet_tf.training.tpu_compile`
    compiles this same function for a TPU."""
    return jax_program(generator, uint8_inputs=not is_noise_generator(generator),
                       uint8_outputs=True)


def serving_generator(generator: keras.Model) -> keras.Model:
    """What the submission runs: the generator itself at 256 px (or from noise), else a float32
    copy with free spatial dimensions (trained at another size)."""
    if is_noise_generator(generator) or tuple(generator.input_shape[1:3]) == (SIZE, SIZE):
        return generator
    return inference_copy(generator)


def translator(generator: keras.Model, runtime, global_batch: int):
    """uint8 [global_batch, S, S, 3] -> uint8 numpy, compiled once for that shape; for a noise
    generator, float32 noise [global_batch, latent_dim] -> uint8 numpy."""
    noise = is_noise_generator(generator)
    if keras.backend.backend() == "jax":
        from monet_tf.scoring.inception import shard_batch, to_host

        def run(images):  # Every process passes the same batch and computes its devices' rows.
            with runtime.scope():
                sharded = shard_batch(np.asarray(images), runtime.distribution)
                return to_host(translate(generator, sharded, uint8=True, uint8_inputs=not noise))
        return run

    strategy = runtime.tf_strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    per_replica = global_batch // replicas

    def replica_fn(images):
        # Every replica gets the whole host batch and translates its own slice of it; int32 for
        # the gather, which has no uint8 between workers.
        start = tf.distribute.get_replica_context().replica_id_in_sync_group * per_replica
        x = images[start:start + per_replica]
        return tf.cast(translate(generator, x, uint8=True, uint8_inputs=not noise), tf.int32)

    @tf.function
    def run(images):
        return strategy.gather(strategy.run(replica_fn, args=(images,)), axis=0)

    return lambda images: run(tf.convert_to_tensor(images)).numpy().astype(np.uint8)


@dataclasses.dataclass
class Submission:
    path: str
    count: int
    seconds: float


def write(generator: keras.Model, runtime, photos: str, path: str, batch_size: int = 16,
          allow_any_count: bool = False, verbose: bool = True) -> Submission:
    """Translates every image of `photos` (a folder, TFRecord folder or glob) into `path`."""
    started = time.monotonic()
    global_batch = batch_size * runtime.replicas
    generator = serving_generator(generator)
    plan = predict.check_outputs(photos, path, batch_size=global_batch,
                                 allow_any_count=allow_any_count, image_size=SIZE,
                                 verbose=verbose)
    count = predict.write_translations(plan, translator(generator, runtime, global_batch),
                                       verbose=verbose, static_batch=True)
    check_zip(path, count if allow_any_count else None)
    return Submission(path, count, time.monotonic() - started)


def write_generated(generator: keras.Model, runtime, path: str, count: int,
                    batch_size: int = 16, allow_any_count: bool = False, seed: int = 0,
                    verbose: bool = True) -> Submission:
    """`count` images of a noise generator (DCGAN's noise_to_monet) into `path`, from the noise
    `python -m monet_tf predict --count` draws with the same seed."""
    started = time.monotonic()
    global_batch = batch_size * runtime.replicas
    plan = predict.check_generation(path, count, batch_size=global_batch,
                                    allow_any_count=allow_any_count, image_size=SIZE, seed=seed,
                                    count_flag="submission.count")
    written = predict.write_generated(plan, translator(generator, runtime, global_batch),
                                      int(generator.input_shape[-1]), verbose=verbose,
                                      static_batch=True)
    check_zip(path, written if allow_any_count else None)
    return Submission(path, written, time.monotonic() - started)


def check_zip(path: str, expected: int | None = None) -> int:
    """Kaggle's rules for images.zip: 7,000-10,000 (or `expected`) uniquely named 256x256 RGB
    JPEGs at the top level. Returns the count."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        if expected is not None and len(names) != expected:
            raise SubmissionError(f"{path}: {len(names)} images, expected {expected}")
        if expected is None and not (predict.KAGGLE_MIN_IMAGES <= len(names)
                                     <= predict.KAGGLE_MAX_IMAGES):
            raise SubmissionError(f"{path}: {len(names)} images; Kaggle needs "
                                  f"{predict.KAGGLE_MIN_IMAGES:,} to {predict.KAGGLE_MAX_IMAGES:,}")
        if len({n.lower() for n in names}) != len(names):
            raise SubmissionError(f"{path}: duplicate image names")
        for name in names:
            data = archive.read(name)
            if "/" in name or not name.lower().endswith(".jpg") or data[:3] != b"\xff\xd8\xff":
                raise SubmissionError(f"{path}: {name} is not a top-level .jpg JPEG")
        for name in names[:: max(1, len(names) // 16)]:  # Decode a spread of them.
            from PIL import Image

            image = Image.open(io.BytesIO(archive.read(name)))
            if image.size != (SIZE, SIZE) or image.mode != "RGB":
                raise SubmissionError(f"{path}: {name} is {image.size} {image.mode}, not "
                                      f"{SIZE}x{SIZE} RGB")
    return len(names)


def preflight(photos: str | None, path: str, settings) -> None:
    """The checks `write` makes, before training: input found, count, output folder.
    photos None: those of `write_generated`, for settings.count images."""
    try:
        if photos is None:
            predict.check_generation(path, int(settings.count), batch_size=settings.batch_size,
                                     allow_any_count=settings.allow_any_count, image_size=SIZE,
                                     count_flag="submission.count")
        else:
            predict.check_outputs(photos, path, batch_size=settings.batch_size,
                                  allow_any_count=settings.allow_any_count, image_size=SIZE,
                                  verbose=False)
    except predict.PredictError as err:
        raise SubmissionError(f"submission.path={path}: {err}") from None
