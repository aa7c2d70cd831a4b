"""Export a generator as a self-contained SavedModel that maps uint8 images to uint8 images
(a translator) or float32 noise to uint8 images (a noise generator: DCGAN's noise_to_monet).

The exported model needs only TensorFlow to run (no monet_tf, no Keras, no custom layers):

    model = tf.saved_model.load(path)
    monet = model.signatures["serving_default"](images=photos_uint8)["images"]

`photos_uint8` is [N, H, W, 3] uint8 for any N, H, W (H and W multiples of 4 are the documented
contract; other sizes also work). The signature scales to [-1, 1], reflect-pads H and W up to the
generator's multiple (4 for ResNet, 256 for U-Net 256) and crops back, runs the generator in
float32 whatever the training precision (or in bfloat16 with precision="bfloat16": about 1.6x
faster on TPUs and CPUs with native bfloat16, slower on GPUs without it), and rounds and clips the
output back to uint8.

A noise generator's SavedModel (export_noise_generator, chosen for a generator whose input is
[N, latent_dim]) takes float32 noise [N, latent_dim], N >= 0, standard normal as in training:

    paintings = model.signatures["serving_default"](noise=z)["images"]  # uint8 [N, S, S, 3]
"""

import os
import shutil
import sys
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from monet_tf.runtime import disk

INPUT_NAME = "images"  # The serving signature's input argument.
NOISE_NAME = "noise"  # A noise generator's serving signature's input argument.
OUTPUT_KEY = "images"  # The serving signature's output key.
PRECISIONS = ("float32", "bfloat16")  # What the exported generator computes in.


class _Translator(tf.Module):
    """What the SavedModel holds: the generator's variables and the uint8 -> uint8 signature."""

    def __init__(self, generator: keras.Model, multiple: int):
        super().__init__(name="translator")
        # Bypass attribute tracking: the Keras objects are traced into the graph, not saved;
        # only the variables below are, so loading needs neither Keras nor monet_tf.
        self.__dict__["_generator"] = generator
        self.generator_variables = list(generator.variables)
        self.multiple = tf.constant(multiple, tf.int32)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name=INPUT_NAME)])
    def translate(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        count, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
        tf.debugging.assert_greater_equal(
            tf.minimum(height, width), 2, message="images must be at least 2x2 pixels"
        )
        x = tf.cast(images, tf.float32) / 127.5 - 1.0
        # Convolutions on an empty batch are unreliable: run one blank image instead, drop it after.
        blank = tf.zeros(tf.concat([[tf.maximum(1 - count, 0)], tf.shape(x)[1:]], 0), x.dtype)
        x = _reflect_pad_to_multiple(tf.concat([x, blank], 0), self.multiple)
        y = tf.cast(self._generator(x, training=False), tf.float32)
        top = (tf.shape(y)[1] - height) // 2
        left = (tf.shape(y)[2] - width) // 2
        y = y[:count, top : top + height, left : left + width, :]
        out = tf.cast(tf.clip_by_value(tf.round((y + 1.0) * 127.5), 0.0, 255.0), tf.uint8)
        return {OUTPUT_KEY: tf.ensure_shape(out, [None, None, None, 3])}


class _NoiseGenerator(tf.Module):
    """What a noise generator's SavedModel holds: its variables and the noise -> uint8
    signature (built for the generator's latent size)."""

    def __init__(self, generator: keras.Model):
        super().__init__(name="noise_generator")
        self.__dict__["_generator"] = generator  # Traced, not saved (see _Translator).
        self.generator_variables = list(generator.variables)
        latent_dim = int(generator.input_shape[-1])
        self.generate = tf.function(
            self._generate,
            input_signature=[tf.TensorSpec([None, latent_dim], tf.float32, name=NOISE_NAME)])

    def _generate(self, noise: tf.Tensor) -> dict[str, tf.Tensor]:
        count = tf.shape(noise)[0]
        # As for _Translator: one blank row instead of an empty batch, dropped after.
        blank = tf.zeros(tf.stack([tf.maximum(1 - count, 0), tf.shape(noise)[1]]), noise.dtype)
        y = tf.cast(self._generator(tf.concat([noise, blank], 0), training=False), tf.float32)
        out = tf.cast(tf.clip_by_value(tf.round((y[:count] + 1.0) * 127.5), 0.0, 255.0), tf.uint8)
        return {OUTPUT_KEY: tf.ensure_shape(out, [None, *self._generator.output_shape[1:]])}


def is_noise_generator(generator: keras.Model) -> bool:
    """A generator of images from noise vectors ([N, latent_dim] in), not a translator."""
    return len(tuple(generator.input_shape)) == 2


def _reflect_indices(size: tf.Tensor, padded: tf.Tensor) -> tf.Tensor:
    """Indices into [0, size) that centre the image in `padded` pixels, mirroring at the edges.

    Unlike tf.pad(mode="REFLECT") this works for any amount of padding (a 32-pixel image padded to
    256 for a U-Net mirrors back and forth), so every size is accepted.
    """
    before = (padded - size) // 2
    period = 2 * (size - 1)
    j = tf.math.floormod(tf.range(padded) - before, period)
    return tf.where(j < size, j, period - j)


def _reflect_pad_to_multiple(x: tf.Tensor, multiple: tf.Tensor) -> tf.Tensor:
    height, width = tf.shape(x)[1], tf.shape(x)[2]
    padded_height = (height + multiple - 1) // multiple * multiple
    padded_width = (width + multiple - 1) // multiple * multiple
    x = tf.gather(x, _reflect_indices(height, padded_height), axis=1)
    return tf.gather(x, _reflect_indices(width, padded_width), axis=2)


def _float32_dynamic_config(config: Any) -> Any:
    """A model config rewritten to compute in float32 and accept any image height and width."""
    if isinstance(config, dict):
        if config.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
            return "float32"
        out = {}
        for key, value in config.items():
            if key in ("batch_shape", "shape", "input_shape", "batch_input_shape") and (
                isinstance(value, (list, tuple)) and len(value) == 4
            ):
                value = [value[0], None, None, value[3]]
            elif key == "dtype" and value in ("bfloat16", "float16"):
                value = "float32"
            else:
                value = _float32_dynamic_config(value)
            out[key] = value
        return out
    if isinstance(config, list):
        return [_float32_dynamic_config(v) for v in config]
    return config


def _custom_objects(model: keras.Model) -> dict[str, type]:
    """The model's layer classes, so from_config finds custom layers even if unregistered."""
    objects: dict[str, type] = {}
    for layer in model._flatten_layers(include_self=True, recursive=True):
        cls = type(layer)
        objects[cls.__name__] = cls
        objects[keras.saving.get_registered_name(cls)] = cls
    return objects


def inference_copy(generator: keras.Model, precision: str = "float32") -> keras.Model:
    """A copy of `generator` computing in `precision`, with free spatial dimensions and the same
    (float32) weights.

    Mixed-precision training leaves bfloat16/float16 compute policies on the layers, and a
    generator built for a fixed image_size only accepts that size; serving needs neither. For
    bfloat16, every layer but the last (the generators' float32 output activation) computes in
    bfloat16, as under the mixed_bfloat16 training policy.
    """
    try:
        config = _float32_dynamic_config(generator.get_config())
        with keras.saving.custom_object_scope(_custom_objects(generator)):
            copy = generator.__class__.from_config(config)
        copy.set_weights(generator.get_weights())
    except Exception as err:  # Subclassed generators without a config: serve them as they are.
        policy = generator.dtype_policy.compute_dtype
        if policy != "float32" or precision != "float32":
            raise ValueError(
                f"cannot make a {precision} copy of generator {generator.name!r} (compute dtype "
                f"{policy}) for export: {err}"
            ) from err
        return generator
    if precision == "bfloat16":
        for layer in copy.layers[1:-1]:
            layer.dtype_policy = "mixed_bfloat16"
    return copy


def _is_saved_model(path: str) -> bool:
    return tf.io.gfile.exists(os.path.join(path, "saved_model.pb")) or tf.io.gfile.exists(
        os.path.join(path, "saved_model.pbtxt")
    )


def _check_generator(generator: keras.Model, noise: bool = False) -> None:
    if not isinstance(generator, keras.Model):
        raise TypeError(f"generator must be a keras.Model, got {type(generator).__name__}")
    if not generator.built:
        raise ValueError(f"generator {generator.name!r} is not built: call it on a batch first")
    shapes = [tuple(generator.input_shape), tuple(generator.output_shape)]
    if noise:
        output = shapes[1]
        if len(shapes[0]) != 2 or len(output) != 4 or output[-1] != 3 or None in output[1:]:
            raise ValueError(
                f"generator {generator.name!r} maps {shapes[0]} to {output}; expected noise "
                "[N, latent_dim] to [N, S, S, 3] images")
        return
    for kind, shape in zip(("input", "output"), shapes):
        if len(shape) != 4 or shape[-1] != 3:
            raise ValueError(
                f"generator {generator.name!r} {kind} shape is {shape}; expected [N, H, W, 3] images"
            )


def _check_export_path(path) -> str:
    path = os.fspath(path).rstrip("/")
    if not path:
        raise ValueError("export path is empty")
    if tf.io.gfile.exists(path):
        if not tf.io.gfile.isdir(path):
            raise ValueError(f"export path {path} exists and is a file, not a SavedModel folder")
        if tf.io.gfile.listdir(path) and not _is_saved_model(path):
            raise ValueError(
                f"export path {path} is a non-empty folder that is not a SavedModel; "
                "refusing to overwrite it"
            )
    return path


def _export_bytes(generator: keras.Model, path: str) -> int:
    """What an export of `generator` to `path` takes: the one it replaces, or at least its
    weights in float32 (the graph adds a few hundred KB)."""
    weights = sum(int(np.prod(w.shape)) * 4 for w in generator.weights)
    previous = sum(tf.io.gfile.stat(os.path.join(folder, name)).length
                   for folder, _, names in tf.io.gfile.walk(path) for name in names)
    return max(weights, previous)


def _save(module: tf.Module, function, path: str, generator: keras.Model) -> None:
    """tf.saved_model.save with `function` as serving_default; an existing SavedModel at `path`
    is replaced atomically (written beside it, then renamed). A full disk: DiskFull, sized by
    the generator's weights, and the part written removed."""
    signatures = {"serving_default": function.get_concrete_function()}
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    if "://" in path:  # Object stores cannot rename folders atomically: replace in place.
        if tf.io.gfile.exists(path):
            tf.io.gfile.rmtree(path)
        tf.saved_model.save(module, path, signatures=signatures, options=options)
        return

    tmp, old = path + ".tmp", path + ".old"

    def remove_tmp() -> None:
        if os.path.lexists(tmp):
            shutil.rmtree(tmp)

    for leftover in (tmp, old):
        if os.path.lexists(leftover):
            shutil.rmtree(leftover)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    with disk.writing(path, lambda: _export_bytes(generator, path), "the SavedModel",
                      cleanup=remove_tmp):
        tf.saved_model.save(module, tmp, signatures=signatures, options=options)
    if os.path.exists(path):
        os.rename(path, old)
    os.rename(tmp, path)
    if os.path.lexists(old):
        shutil.rmtree(old)


def export_generator(generator: keras.Model, path: str, multiple: int = 4,
                     precision: str = "float32") -> None:
    """Write `generator` to `path` as a SavedModel with a uint8 -> uint8 `serving_default`.

    `multiple`: the generator needs H and W divisible by it (monet_tf.models.generator_multiple);
    inputs are reflect-padded up to it inside the signature and the output cropped back.
    `precision`: float32 (runs everywhere) or bfloat16 (faster where bfloat16 is native).
    An existing SavedModel at `path` is replaced atomically (written beside it, then renamed);
    any other existing file or non-empty folder is refused rather than deleted.
    """
    _check_generator(generator)
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f"multiple must be a positive integer, got {multiple!r}")
    _check_precision(precision)
    path = _check_export_path(path)
    translator = _Translator(inference_copy(generator, precision), multiple)
    _save(translator, translator.translate, path, generator)


def export_noise_generator(generator: keras.Model, path: str, precision: str = "float32") -> None:
    """Write a noise generator (input [N, latent_dim]) to `path` as a SavedModel whose
    `serving_default` maps float32 noise [N, latent_dim] to uint8 images [N, S, S, 3].

    `precision` and the replacement of an existing SavedModel: as export_generator.
    """
    _check_generator(generator, noise=True)
    _check_precision(precision)
    path = _check_export_path(path)
    module = _NoiseGenerator(inference_copy(generator, precision))
    _save(module, module.generate, path, generator)


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"--precision={precision!r} is not one of {', '.join(PRECISIONS)}")


def export_generators(generators: dict[str, keras.Model], export_dir: str, multiple: int,
                      precision: str = "float32") -> str:
    """Exports each generator to `<export_dir>/<name>` (photo_to_monet, and monet_to_photo for
    CycleGAN; noise_to_monet, a noise generator, for DCGAN: `multiple` does not apply to it)."""
    for name, generator in generators.items():
        path = os.path.join(export_dir, name)
        if is_noise_generator(generator):
            export_noise_generator(generator, path, precision)
        else:
            export_generator(generator, path, multiple, precision)
    return export_dir


def export_checkpoint(workdir: str, checkpoint: str | None = None, output: str | None = None,
                      precision: str = "float32") -> str:
    """Rebuilds the run's generators from `workdir`'s saved config and a checkpoint, and exports
    them.

    `checkpoint`: a checkpoint prefix (default: the latest in `<workdir>/checkpoints`);
    `output`: the export folder (default `<workdir>/export`); `precision`: see export_generator.
    """
    from monet_tf.models.checkpoints import restore_generators
    from monet_tf.models import generator_multiple

    generators, cfg = restore_generators(workdir, checkpoint)
    return export_generators(
        generators,
        output or os.path.join(workdir, "export"),
        multiple=generator_multiple(cfg.model.generator),
        precision=precision,
    )


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from monet_tf.models.checkpoints import WorkdirError

    try:
        out = export_checkpoint(flags.FLAGS.workdir, flags.FLAGS.checkpoint, flags.FLAGS.output,
                                flags.FLAGS.precision)
    except (WorkdirError, ValueError, tf.errors.NotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    names = sorted(n for n in tf.io.gfile.listdir(out) if _is_saved_model(os.path.join(out, n)))
    print(f"exported {', '.join(names)} to {out}")


def define_flags() -> None:
    flags.DEFINE_string("workdir", None, "Training workdir (holds config.json and checkpoints/).")
    flags.DEFINE_string("checkpoint", None,
                        "Checkpoint prefix, e.g. W/checkpoints/ckpt-3, or a JAX run's checkpoint "
                        "folder (default: the latest).")
    flags.DEFINE_string("output", None, "Export folder (default: <workdir>/export).")
    flags.DEFINE_string("backend", "auto",
                        "auto | tensorflow: export always runs on TensorFlow (it reads the "
                        "checkpoints of JAX runs too).")
    flags.DEFINE_enum("precision", "float32", PRECISIONS,
                      "What the exported generators compute in: float32 runs everywhere; bfloat16 "
                      "is about 1.6x faster on TPUs and CPUs with native bfloat16 (AVX512-BF16, "
                      "AMX) and slow on GPUs without it.")
    flags.mark_flags_as_required(["workdir"])
