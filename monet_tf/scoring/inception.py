"""InceptionV3 pool features (2048-d) for FID/MiFID, batched and data-parallel over the devices.

Backends: on TensorFlow the batches run under a tf.distribute strategy (one tf.function step). On
JAX (KERAS_BACKEND=jax) there is no strategy: the batches are sharded over the devices of the
global `keras.distribution` (e.g. DataParallel; one device when none is set) and run through one
jax.jit of the model's stateless_call. tf.data is the host input pipeline on both.

Weights (`weights=` / `--inception_weights` / `cfg.eval.inception_weights`):
  * "imagenet" (or ""): Keras' ImageNet weights, from the Keras cache
    ($KERAS_HOME or ~/.keras)/models/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5,
    downloaded there when missing and the network allows it.
  * a local file holding the weights of `keras.applications.InceptionV3(include_top=False)`:
    Keras' own notop `.h5` (the file above, copied from a machine with internet), a
    `model.save_weights("x.weights.h5")` file (also accepted renamed to `.h5`), a legacy full-model
    `.h5` or a `.keras` model file of that architecture. Local paths and gs:// are read with tf.io.gfile.
  * None: random initialisation (tests only: the scores mean nothing).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import warnings
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

INPUT_SIZE = 299
FEATURE_DIM = 2048
IMAGENET_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_URL = "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/" + IMAGENET_FILE
_IMAGENET_MD5 = "bcbd6486424b2319ff4ef7d526e38f63"
_DOWNLOAD_TIMEOUT_S = 20.0


class InceptionWeightsError(RuntimeError):
    """No usable InceptionV3 weights; the message says how to provide them."""


def imagenet_cache_path() -> str:
    """Where Keras keeps (and looks for) the ImageNet notop weights."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models", IMAGENET_FILE)


def _how_to_fix() -> str:
    return (
        f"Either let Keras download its ImageNet weights (needs internet; weights='imagenet', i.e. "
        f"an empty --inception_weights / eval.inception_weights; or copy {IMAGENET_FILE} from a machine "
        f"that has it to {imagenet_cache_path()}), or pass --inception_weights=PATH "
        f"(config: eval.inception_weights) pointing at a local InceptionV3 notop weights file "
        f"(.h5, .weights.h5 or .keras)."
    )


def _imagenet_weights_path() -> str:
    """The cached ImageNet file, or a download bounded by a socket timeout; errors are ours."""
    try:
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
        try:
            return keras.utils.get_file(IMAGENET_FILE, IMAGENET_URL, cache_subdir="models",
                                        file_hash=_IMAGENET_MD5)
        finally:
            socket.setdefaulttimeout(previous)
    except (Exception, KeyboardInterrupt) as err:  # get_file raises bare Exception on URL errors
        if isinstance(err, KeyboardInterrupt):
            raise
        raise InceptionWeightsError(
            f"InceptionV3 ImageNet weights are not in the Keras cache ({imagenet_cache_path()}) and "
            f"could not be downloaded from {IMAGENET_URL} ({type(err).__name__}: {err}). "
            + _how_to_fix()
        ) from err


def resolve_weights(weights: str | None) -> str | None:
    """A local file path to load (or None for random init), failing fast when there is none."""
    if weights is None:
        return None
    if weights in ("", "imagenet"):
        return _imagenet_weights_path()
    if not tf.io.gfile.exists(weights):
        raise InceptionWeightsError(f"--inception_weights file not found: {weights}. " + _how_to_fix())
    if tf.io.gfile.isdir(weights):
        raise InceptionWeightsError(f"--inception_weights must be a file, got the directory {weights}. "
                                    + _how_to_fix())
    if not weights.endswith((".h5", ".hdf5", ".keras")):
        raise InceptionWeightsError(
            f"--inception_weights {weights}: unsupported file type (expected .h5, .hdf5, "
            ".weights.h5 or .keras). " + _how_to_fix())
    return weights


def _load_weights(model: keras.Model, path: str) -> None:
    """Loads any of the accepted formats into `model`, naming the file when that fails."""
    with tempfile.TemporaryDirectory() as tmp:
        local = path
        if not os.path.exists(path):  # gs:// and other tf.io.gfile schemes
            local = os.path.join(tmp, os.path.basename(path))
            tf.io.gfile.copy(path, local)
        if local.endswith((".h5", ".hdf5")) and not local.endswith(".weights.h5"):
            import h5py

            with h5py.File(local, "r") as f:
                legacy = "layer_names" in f.attrs or "model_weights" in f
            if not legacy:  # A Keras 3 save_weights() file that lost its ".weights.h5" suffix.
                renamed = os.path.join(tmp, "inception.weights.h5")
                shutil.copyfile(local, renamed)
                local = renamed
        problem = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                model.load_weights(local)
            except Exception as err:
                problem = err
        # Keras only warns when some layers found nothing to load: they would stay random.
        skipped = [str(w.message) for w in caught if re.search(r"skipp|freshly|mismatch", str(w.message), re.I)]
        if problem is not None or skipped:
            detail = f"{type(problem).__name__}: {problem}" if problem is not None else skipped[0]
            raise InceptionWeightsError(
                f"could not load InceptionV3 weights from {path}: {detail}. The file must hold "
                "keras.applications.InceptionV3(include_top=False) weights. " + _how_to_fix()
            ) from problem


def build_inception(weights: str | None = "imagenet") -> keras.Model:
    """InceptionV3 without its classifier, global-average pooled: [B,299,299,3] in [-1,1] → [B,2048].

    Always float32 (the global mixed-precision policy is ignored) so scores do not depend on it.
    Call under `strategy.scope()` to place the variables for a strategy (TensorFlow); on JAX they
    are placed by the keras.distribution in effect (replicated under DataParallel). On JAX the
    first build in a process is slow on CPU (~25 s: each random initialiser compiles per shape).
    """
    path = resolve_weights(weights)
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        model = keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg",
                                               input_shape=(INPUT_SIZE, INPUT_SIZE, 3))
    finally:
        keras.config.set_dtype_policy(policy)
    if path is not None:
        _load_weights(model, path)
    model.trainable = False
    return model


def _is_jax() -> bool:
    return keras.backend.backend() == "jax"


def to_inception_input(images):
    """uint8 [0,255] or float [-1,1] images [..,H,W,3] → float32 [..,299,299,3] in [-1,1].

    Bilinear resize without antialiasing (as the TF graphs used for FID do), then Keras'
    inception_v3.preprocess_input scaling (x / 127.5 − 1) for uint8 input.

    TF ops for tf.Tensors (always on the TensorFlow backend; tf.data maps on JAX); keras.ops
    (e.g. inside a jax.jit) for anything else on the JAX backend: same maths, half-pixel centres.
    """
    if _is_jax() and not tf.is_tensor(images):
        return _to_inception_input_keras(images)
    if images.dtype == tf.uint8:
        images = tf.cast(images, tf.float32) / 127.5 - 1.0
    else:
        images = tf.cast(images, tf.float32)
    if tuple(images.shape[-3:-1]) != (INPUT_SIZE, INPUT_SIZE):
        images = tf.image.resize(images, (INPUT_SIZE, INPUT_SIZE), method="bilinear", antialias=False)
    return images


def _to_inception_input_keras(images):
    images = keras.ops.convert_to_tensor(images)
    if keras.backend.standardize_dtype(images.dtype) == "uint8":
        images = keras.ops.cast(images, "float32") / 127.5 - 1.0
    else:
        images = keras.ops.cast(images, "float32")
    if tuple(images.shape[-3:-1]) != (INPUT_SIZE, INPUT_SIZE):
        images = keras.ops.image.resize(images, (INPUT_SIZE, INPUT_SIZE), interpolation="bilinear",
                                        antialias=False, data_format="channels_last")
    return images


def _is_keras_distribution(value) -> bool:
    # keras.distribution exports DataParallel and ModelParallel but not their base class.
    return hasattr(value, "device_mesh") and hasattr(value, "get_data_layout")


def data_parallel_size(distribution=None) -> int:
    """How many ways a keras.distribution splits the batch (JAX): the size of its batch axis
    (all the devices for DataParallel), 1 when there is no distribution."""
    if distribution is None:
        return 1
    mesh = distribution.device_mesh
    batch_dim = getattr(distribution, "batch_dim_name", None)
    if batch_dim in tuple(mesh.axis_names):
        return int(mesh.shape[tuple(mesh.axis_names).index(batch_dim)])
    return int(np.asarray(mesh.devices).size)


def shard_batch(batch, distribution=None):
    """A host batch [B, ...] as a jax.Array split along B over `distribution`'s batch axis
    (B must divide evenly), or on the default device when there is no distribution."""
    if distribution is None:
        import jax

        return jax.device_put(batch)
    return keras.distribution.distribute_tensor(batch, distribution.get_data_layout(batch.shape))


def to_host(array) -> np.ndarray:
    """A jax.Array as numpy on this process: gathered from every process's devices when it is
    split over several processes (a multi-process run's sharded batch)."""
    if getattr(array, "is_fully_addressable", True) or array.is_fully_replicated:
        return np.asarray(array)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(array, tiled=True))


def jax_features_step(model: keras.Model, distribution=None):
    """The MiFID features as one JAX program: (trainable, non_trainable, images) -> [B, 2048],
    resize included, jitted. The variables are arguments, so set_weights / load_weights later
    are seen; the features come back replicated over `distribution`'s devices (a small
    all-gather), readable from every host. `monet_tf.training.tpu_compile` compiles this same
    function for a TPU."""
    import jax

    def features(trainable, non_trainable, images):
        outputs, _ = model.stateless_call(trainable, non_trainable, to_inception_input(images),
                                          training=False)
        return outputs

    replicated = None
    if distribution is not None:
        replicated = keras.distribution.TensorLayout(
            [None, None], distribution.device_mesh).backend_layout
    return jax.jit(features, out_shardings=replicated)


def _image_component(*element):
    """Datasets of images or of (name, image) pairs (as monet_tf.data.read_image_files yields)."""
    return element[-1]


class InceptionFeatures:
    """Computes [N, 2048] pool features of a finite set of images, data-parallel.

    `batch_size` is per replica (per device); every batch is padded to the global batch size
    (static shapes for TPU) and the padding is dropped from the result, so any N works on any
    number of replicas.

    TensorFlow backend: runs under `strategy` (default: the current tf.distribute strategy).
    JAX backend: `strategy` must be None (the global keras.distribution, read here, is used: set
    it before constructing) or a keras.distribution.Distribution to use instead; the global batch
    is batch_size × the distribution's data-parallel size.
    """

    def __init__(self, weights: str | None = "imagenet", strategy: tf.distribute.Strategy | None = None,
                 batch_size: int = 32):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.batch_size = batch_size
        self._steps: dict = {}
        if _is_jax():
            if strategy is not None and not _is_keras_distribution(strategy):
                raise ValueError(
                    f"InceptionFeatures on the JAX backend takes no tf.distribute strategy (got "
                    f"{type(strategy).__name__}): pass strategy=None and set the devices with "
                    "keras.distribution.set_distribution(keras.distribution.DataParallel(...)) "
                    "before building, or pass that Distribution itself")
            self.strategy = None
            self.distribution = strategy if strategy is not None else keras.distribution.distribution()
            with self._distribution_scope():
                self.model = build_inception(weights)
            return
        self.strategy = strategy or tf.distribute.get_strategy()
        self.distribution = None
        with self.strategy.scope():
            self.model = build_inception(weights)

    @property
    def num_replicas(self) -> int:
        if self.strategy is None:
            return data_parallel_size(self.distribution)
        return self.strategy.num_replicas_in_sync

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.num_replicas

    def _distribution_scope(self):
        import contextlib

        return self.distribution.scope() if self.distribution is not None else contextlib.nullcontext()

    def _step(self, transform: Callable | None):
        if transform not in self._steps:
            def replica_fn(images, valid):
                if transform is not None:
                    images = transform(images)
                return self.model(to_inception_input(images), training=False), tf.cast(valid, tf.int32)

            @tf.function
            def step(batch):
                features, valid = self.strategy.run(replica_fn, args=batch)
                return self.strategy.gather(features, axis=0), self.strategy.gather(valid, axis=0)

            self._steps[transform] = step
        return self._steps[transform]

    def _jax_step(self):
        if "jax" not in self._steps:
            self._steps["jax"] = jax_features_step(self.model, self.distribution)
        return self._steps["jax"]

    def _jax_features(self, batch: np.ndarray, transform: Callable | None) -> np.ndarray:
        images = shard_batch(batch, self.distribution)
        if transform is not None:
            images = shard_batch(transform(images), self.distribution)
        features = self._jax_step()([v.value for v in self.model.trainable_variables],
                                    [v.value for v in self.model.non_trainable_variables], images)
        return np.asarray(features)

    def _batches(self, images, resize_on_host: bool) -> tuple[tf.data.Dataset, int | None]:
        if not isinstance(images, tf.data.Dataset):
            images = tf.data.Dataset.from_tensor_slices(np.asarray(images))
        images = images.map(_image_component)
        if len(images.element_spec.shape) == 4:
            images = images.unbatch()
        total = int(images.cardinality())
        if resize_on_host:  # Images of different sizes cannot be batched before resizing.
            images = images.map(to_inception_input, num_parallel_calls=tf.data.AUTOTUNE)
        size = self.global_batch_size

        def pad(batch):  # Images, or a transform's other inputs (a noise generator's noise).
            n = tf.shape(batch)[0]
            batch = tf.pad(batch, [[0, size - n]] + [[0, 0]] * (len(batch.shape) - 1))
            return tf.ensure_shape(batch, [size, *batch.shape[1:]]), tf.range(size) < n

        # Several TensorFlow workers: each reads every batch and computes its replicas' rows
        # (by element, never by file: the batches must be the same everywhere).
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA)
        batches = images.batch(size).map(pad).prefetch(tf.data.AUTOTUNE).with_options(options)
        return batches, (total if total >= 0 else None)

    def _results(self, data: tf.data.Dataset, transform: Callable | None):
        """(features [global_batch, 2048], valid [global_batch] bool) numpy pairs, per batch."""
        if self.strategy is None:
            with self._distribution_scope():
                for batch, valid in data.as_numpy_iterator():
                    yield self._jax_features(batch, transform), valid
            return
        step = self._step(transform)
        for batch in self.strategy.experimental_distribute_dataset(data):
            features, valid = step(batch)
            yield features.numpy(), valid.numpy().astype(bool)

    def __call__(self, images, transform: Callable | None = None,
                 progress: str | None = None) -> np.ndarray:
        """Features of `images`: a tf.data.Dataset (of images or (name, image); unbatched or
        batched) or an array [N,H,W,3], uint8 or float in [-1,1].

        `transform` (e.g. a generator) runs on each batch first; images must then be of one size.
        TensorFlow: it runs per replica on tf.Tensors inside the step. JAX: it gets the padded
        global batch as a jax.Array sharded over the devices and returns an array (numpy or jax;
        uint8 or float [-1,1]); it should run jitted itself (as MiFIDCallback's translation
        does), and may return it sharded like its input.
        `progress`: a label, shows a keras Progbar counting images.
        """
        data, total = self._batches(images, resize_on_host=transform is None)
        bar = None
        if progress:
            print(progress)
            bar = keras.utils.Progbar(total, unit_name="image")
        chunks, seen = [], 0
        for features, valid in self._results(data, transform):
            chunks.append(features[valid])
            seen += int(valid.sum())
            if bar is not None:
                bar.update(seen)
        if bar is not None and total is None:
            bar.update(seen, finalize=True)
        if not seen:
            raise ValueError("no images to compute InceptionV3 features of")
        return np.concatenate(chunks).astype(np.float32)
