"""A generator's images in inference mode, one way for every caller: the sample grids, the MiFID
and quality-card callbacks and the submission (monet_tf.inference.predict runs an exported
SavedModel instead).

On JAX one jitted stateless call per generator and kind of input and output: called eagerly,
every op would be compiled on its own the first time (tens of seconds on a CPU, per run). On
TensorFlow the Keras call, eagerly, under the current strategy.
"""

from __future__ import annotations

import weakref

import keras
import numpy as np

# generator -> {(uint8_inputs, uint8_outputs): its jitted program}
_PROGRAMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def from_uint8(images):
    """uint8 photos -> float32 in [-1, 1], as the generators take them."""
    return keras.ops.cast(images, "float32") / 127.5 - 1.0


def to_uint8(images):
    """[-1, 1] floats -> uint8 as images.zip holds them (rounded, clipped), on the devices."""
    images = (keras.ops.cast(images, "float32") + 1.0) * 127.5
    return keras.ops.cast(keras.ops.clip(keras.ops.round(images), 0.0, 255.0), "uint8")


def jax_program(generator: keras.Model, uint8_inputs: bool = False, uint8_outputs: bool = False):
    """(trainable, non_trainable, inputs) -> images, jitted once per generator and kind: uint8
    inputs are photos (from_uint8 first), else the generator's own inputs ([-1, 1] photos or
    noise); uint8 outputs are to_uint8 of its images. `monet_tf.training.tpu_compile` compiles
    the submission's for a TPU."""
    programs = _PROGRAMS.setdefault(generator, {})
    key = (uint8_inputs, uint8_outputs)
    if key not in programs:
        import jax

        model = weakref.ref(generator)  # The program must not keep the generator alive.

        def run(trainable, non_trainable, inputs):
            x = from_uint8(inputs) if uint8_inputs else inputs
            images = model().stateless_call(trainable, non_trainable, x, training=False)[0]
            return to_uint8(images) if uint8_outputs else images

        programs[key] = jax.jit(run)
    return programs[key]


def _on_this_process(value):
    """A variable's value usable by a program of this process alone: the value itself, or, when
    it lives on every process's devices (a multi-process run), this process's replica of it."""
    return value if getattr(value, "is_fully_addressable", True) else np.asarray(value)


def translate(generator: keras.Model, inputs, uint8: bool = False, uint8_inputs: bool = False,
              this_process: bool = False):
    """The generator's images of `inputs` (its own inputs: [-1, 1] photos or noise; uint8 photos
    with uint8_inputs), uint8 as images.zip holds them or as the generator gives them; on the
    backend's devices (a JAX array or a tensor), numpy to read them on the host.

    this_process: on JAX, run on this process's devices alone, with its replica of every
    variable (process 0 of a multi-process run draws the grids alone); otherwise the program
    runs where `inputs` and the variables are (a global batch over every process's devices).
    """
    if keras.backend.backend() != "jax":
        images = generator(from_uint8(inputs) if uint8_inputs else inputs, training=False)
        return to_uint8(images) if uint8 else images
    value = _on_this_process if this_process else (lambda v: v)
    return jax_program(generator, uint8_inputs, uint8)(
        [value(v.value) for v in generator.trainable_variables],
        [value(v.value) for v in generator.non_trainable_variables], inputs)
