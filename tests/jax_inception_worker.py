"""The JAX half of tests/test_inception_jax.py, run as `python tests/jax_inception_worker.py DIR`.

Needs KERAS_BACKEND=jax and two host devices (XLA_FLAGS=--xla_force_host_platform_device_count=2).
Reads DIR/inputs.npz and DIR/inc.weights.h5 (written by the TensorFlow test process, which
starts this worker before it writes the weights), writes DIR/results.npz and DIR/results.json for
the test functions to check. One process does every check because building InceptionV3 on JAX for
the first time costs most of the run (its random initialisers compile once per shape, ~25 s on
CPU); later builds in the same process are quick.
"""

import json
import pathlib
import sys
import time
import types

import jax
import keras
import numpy as np
import tensorflow as tf

from monet_tf.scoring import inception
from monet_tf.scoring import metrics
from monet_tf.scoring.mifid_callback import MiFIDCallback

BATCH = 2  # per device


def _quantize_numpy(images) -> np.ndarray:
    """The callback's quantisation on the host: the same rounding (half to even) and clipping."""
    images = np.asarray(images).astype(np.float32)
    return np.round(np.clip((images + 1.0) * 127.5, 0.0, 255.0)).astype(np.uint8)


def main(out: pathlib.Path) -> None:
    start = time.monotonic()
    assert keras.backend.backend() == "jax", keras.backend.backend()
    inputs = dict(np.load(out / "inputs.npz"))
    arrays, info = {}, {"devices": len(jax.devices("cpu"))}
    inception.build_inception(None)  # the slow first build, while the TF side writes the weights
    info["first_build_s"] = time.monotonic() - start
    weights = out / "inc.weights.h5"
    deadline = time.monotonic() + 300
    while not weights.exists():  # the test process renames it into place once written
        if time.monotonic() > deadline:
            raise TimeoutError(f"{weights} never appeared")
        time.sleep(0.2)
    weights = str(weights)

    # keras.ops resize/scaling (used inside the jitted step) against the tf.data one.
    small = inputs["small"]  # uint8 [2, 40, 48, 3]
    arrays["resize_keras_uint8"] = np.asarray(inception.to_inception_input(small))
    arrays["resize_tf_uint8"] = inception.to_inception_input(tf.constant(small)).numpy()
    floats = small.astype(np.float32) / 127.5 - 1.0
    arrays["resize_keras_float"] = np.asarray(inception.to_inception_input(floats))
    arrays["resize_tf_float"] = inception.to_inception_input(tf.constant(floats)).numpy()

    try:
        inception.InceptionFeatures(None, strategy=tf.distribute.get_strategy())
        info["tf_strategy_error"] = None
    except ValueError as err:
        info["tf_strategy_error"] = str(err)

    images = inputs["images"]  # uint8 [5, 40, 48, 3]
    single = inception.InceptionFeatures(weights, batch_size=BATCH)  # no distribution: one device
    info["single_global_batch"] = single.global_batch_size
    arrays["single"] = single(images)
    info["built_single_s"] = time.monotonic() - start

    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices("cpu")))
    multi = inception.InceptionFeatures(weights, batch_size=BATCH)
    info["multi_global_batch"] = multi.global_batch_size
    arrays["multi"] = multi(tf.data.Dataset.from_tensor_slices(images))
    info["weights_devices"] = len(multi.model.weights[0].value.sharding.device_set)
    info["multi_s"] = time.monotonic() - start

    # MiFIDCallback with a tiny generator built under the same DataParallel distribution (zeros
    # initialisers, then random weights: a random initialiser compiles per new shape, seconds).
    inp = keras.Input((32, 32, 3))
    hidden = keras.layers.Conv2D(8, 3, padding="same", activation="relu", kernel_initializer="zeros")(inp)
    generator = keras.Model(inp, keras.layers.Conv2D(3, 3, padding="same", activation="tanh",
                                                     kernel_initializer="zeros")(hidden))
    rng = np.random.default_rng(1)
    generator.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in generator.weights])
    photos, monets = inputs["photos"], inputs["monets"]  # float [-1, 1], 32 px: the resize runs jitted
    callback = MiFIDCallback(photos=tf.data.Dataset.from_tensor_slices(photos),
                             monets=tf.data.Dataset.from_tensor_slices(monets),
                             batch_size=BATCH, inception_weights=None)
    callback.set_model(types.SimpleNamespace(photo_to_monet=generator))
    seen_shardings = []
    translate = callback._translate

    def spy(batch):  # what the generator gets: the padded global batch, split over the devices
        seen_shardings.append([len(batch.sharding.device_set), list(batch.shape)])
        return translate(batch)

    callback._translate = spy
    scores = callback.score()
    info["transform_inputs"] = seen_shardings
    info["scores"] = scores
    info["callback_global_batch"] = callback._features.global_batch_size
    info["callback_s"] = time.monotonic() - start  # most of it: FID's sqrtm of a 2048² matrix
    extractor = callback._features
    quantised = _quantize_numpy(generator.predict_on_batch(photos))
    info["expected_memorization"] = metrics.memorization_distance(extractor(quantised), extractor(monets))
    info["memorization_check_s"] = time.monotonic() - start

    np.savez(out / "results.npz", **arrays)
    (out / "results.json").write_text(json.dumps(info))


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]))
