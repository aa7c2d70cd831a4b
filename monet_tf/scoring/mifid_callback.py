"""MiFID during training: every N epochs, translate held-out photos (or, for a noise generator,
generate from fixed noise) and score the images against Monets.

Put it BEFORE CSVLogger / TensorBoard / wandb loggers in the callback list: it writes `mifid`,
`fid` and `memorization` into the epoch's `logs`, which the later callbacks (and History) record.
Once active, the three keys are in every epoch's logs (NaN on epochs that are not scored), because
CSVLogger fixes its columns at the first epoch and History must stay aligned with epochs.
"""

from __future__ import annotations

import math
import sys
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from monet_tf.runtime.translate import translate
from monet_tf.scoring import metrics
from monet_tf.runtime.console import warn
from monet_tf.scoring.inception import InceptionFeatures, InceptionWeightsError

SCORE_KEYS = ("mifid", "fid", "memorization")


def translate_to_uint8(generator: keras.Model, inputs):
    """The generator's images of `inputs` as uint8, as images.zip holds them, where `inputs` are
    (on JAX the global batch, split over every process's devices: the images stay where the next
    step takes them; on TensorFlow under the current strategy)."""
    return translate(generator, inputs, uint8=True)


class MiFIDCallback(keras.callbacks.Callback):
    """Scores `model.<generator>` (photo_to_monet) by MiFID every `every_n_epochs` epochs.

    photos: finite tf.data.Dataset of the generator's inputs (unbatched), run through it each
      time: float [-1, 1] photos [S, S, 3] for a translator (the same fixed set, e.g.
      data.heldout_photos); fixed noise vectors [latent_dim] for a noise generator
      (generator="noise_to_monet", DCGAN).
    monets: finite dataset of float [-1, 1] Monet images: the FID real set and the memorization
      training set; their features are computed once.
    inception_weights: "imagenet", a local weights file, or None (random: tests only).
    strategy: TensorFlow backend: the tf.distribute strategy to score under (default: the
      current one). JAX backend: None (the global keras.distribution is used).
    on_new_best(epoch, mifid): called when the MiFID improves on the best so far (epoch is Keras'
      0-based index), e.g. to export the generator to export/best.
    initial_best: the best MiFID so far (pass it when resuming so a worse score does not replace it).

    When the Inception weights cannot be had, one warning is logged and the callback does nothing.
    """

    def __init__(self, photos: tf.data.Dataset, monets: tf.data.Dataset, every_n_epochs: int = 1,
                 batch_size: int = 32, inception_weights: str | None = "imagenet",
                 strategy: tf.distribute.Strategy | None = None,
                 on_new_best: Callable[[int, float], None] | None = None,
                 initial_best: float = math.inf,
                 memorization_threshold: float = metrics.MIFID_EPS, verbose: bool = True,
                 generator: str = "photo_to_monet"):
        super().__init__()
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be at least 1, got {every_n_epochs}")
        self.photos = photos
        self.monets = monets
        self.every_n_epochs = every_n_epochs
        self.batch_size = batch_size
        self.inception_weights = inception_weights
        self.strategy = strategy
        self.on_new_best = on_new_best
        self.best = initial_best
        self.memorization_threshold = memorization_threshold
        self.verbose = verbose
        self.generator = generator
        self.disabled = False
        self.last_scores: dict[str, float] | None = None
        self._features: InceptionFeatures | None = None
        self._monet_features: np.ndarray | None = None
        self._monet_stats = None

    def _ready(self) -> bool:
        """Builds Inception once (fit may be called once per epoch); False when unavailable."""
        if self.disabled:
            return False
        if self._features is None:
            try:
                self._features = InceptionFeatures(self.inception_weights, strategy=self.strategy,
                                                   batch_size=self.batch_size)
            except InceptionWeightsError as err:
                self.disabled = True
                warn(f"MiFID scoring is OFF for this run, training goes on: {err}")
                return False
        return True

    def on_train_begin(self, logs=None):
        self._ready()  # Surface missing weights before the first epoch, not after it.

    def _translate(self, inputs):
        return translate_to_uint8(getattr(self.model, self.generator), inputs)

    def score(self) -> dict[str, float]:
        """Runs the generator on its inputs and scores the images now (also usable outside
        fit)."""
        if not self._ready():
            raise InceptionWeightsError("no Inception weights (see the warning above)")
        if self._monet_features is None:
            self._monet_features = self._features(self.monets)
            self._monet_stats = metrics.feature_statistics(self._monet_features)
        generated = self._features(self.photos, transform=self._translate)
        return metrics.scores(generated, self._monet_features, eps=self.memorization_threshold,
                              real_stats=self._monet_stats)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or not self._ready():
            return
        # An epoch cut short (a signal, the time budget) is not scored: the save comes first.
        if (epoch + 1) % self.every_n_epochs or self.model.stop_training:
            logs.update({key: math.nan for key in SCORE_KEYS})
            return
        result = self.score()
        self.last_scores = result
        logs.update({key: result[key] for key in SCORE_KEYS})
        if self.verbose:
            logging.info("epoch %d: MiFID %.4f (FID %.4f, memorization %.4f)",
                         epoch + 1, result["mifid"], result["fid"], result["memorization"])
        self._log_wandb(epoch, result)
        if result["mifid"] < self.best:
            self.best = result["mifid"]
            if self.on_new_best is not None:
                self.on_new_best(epoch, result["mifid"])

    @staticmethod
    def _log_wandb(epoch: int, result: dict[str, float]) -> None:
        wandb = sys.modules.get("wandb")  # Only a run someone else started; never import it here.
        run = getattr(wandb, "run", None) if wandb is not None else None
        if run is None:
            return
        payload = {f"eval/{key}": result[key] for key in SCORE_KEYS}
        step = epoch + 1
        if run.step <= step:  # Same step convention as monet_tf.training.callbacks.WandbMetrics.
            run.log(payload, step=step)
        else:
            run.log(payload)
