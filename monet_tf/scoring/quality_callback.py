"""The quality card during training: every N epochs, translate the held-out photos and card them
against the run's paintings (monet_tf.scoring.quality), with no pretrained network.

Put it BEFORE CSVLogger / TensorBoard / wandb loggers, as MiFIDCallback: it writes CARD_KEYS into
the epoch's logs (NaN on epochs it does not score, so the CSV's columns and History stay aligned).
Without MiFID it also chooses `export/best`: the lowest card score (the mean of SWD, palette and
spectrum over their floors) among the epochs not flagged as memorizing.
"""

from __future__ import annotations

import math
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from monet_tf.scoring import quality
from monet_tf.data import to_uint8
from monet_tf.scoring.mifid_callback import translate_to_uint8

# The logged figures: the card's measures, under names that say where they come from.
CARD_KEYS = ("card_score", "card_swd", "card_palette", "card_spectrum", "card_checkerboard",
             "card_ssim", "card_memorization")


def card_size(image_size: int) -> int:
    """The card's side: the largest power of two not above the run's image size."""
    return 1 << (int(image_size).bit_length() - 1)


def _uint8(dataset: tf.data.Dataset, size: int, batch_size: int) -> np.ndarray:
    """float [-1, 1] images of a finite dataset as uint8 [N, size, size, 3]."""
    batches = [_resized(to_uint8(b), size) for b in dataset.batch(batch_size)]
    return np.concatenate(batches)


def _resized(images, size: int) -> np.ndarray:
    images = np.asarray(images)
    if images.shape[1] == size:
        return images
    small = tf.image.resize(images, (size, size), antialias=True)
    return tf.cast(tf.round(tf.clip_by_value(small, 0, 255)), tf.uint8).numpy()


class QualityCardCallback(keras.callbacks.Callback):
    """Cards `model.<generator>`'s translations of `photos` every `every_n_epochs` epochs.

    photos: finite dataset of float [-1, 1] photos (the held-out ones, the same every time).
    monets: finite dataset of float [-1, 1] paintings: the card's real and training set.
    on_new_best(epoch, score): called when the card score improves on the best so far (and the
      translations are not flagged as memorized); None when MiFID chooses the best instead.
    initial_best: the best card score so far (when resuming).
    """

    def __init__(self, photos: tf.data.Dataset, monets: tf.data.Dataset, image_size: int,
                 every_n_epochs: int = 1, batch_size: int = 32,
                 on_new_best: Callable[[int, float], None] | None = None,
                 initial_best: float = math.inf, seed: int = 0, verbose: bool = True,
                 generator: str = "photo_to_monet"):
        super().__init__()
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be at least 1, got {every_n_epochs}")
        self.photos, self.monets = photos, monets
        self.size = card_size(image_size)
        self.every_n_epochs, self.batch_size = every_n_epochs, batch_size
        self.on_new_best, self.best = on_new_best, initial_best
        self.seed, self.verbose, self.generator = seed, verbose, generator
        self._reference: quality.Reference | None = None
        self._photos: np.ndarray | None = None

    def score(self) -> dict:
        """Translates the photos now and returns their card (also usable outside fit)."""
        if self._reference is None:  # Once: the paintings do not change during a run.
            self._reference = quality.Reference(_uint8(self.monets, self.size, self.batch_size),
                                                seed=self.seed)
            self._photos = _uint8(self.photos, self.size, self.batch_size)
            floor = self._reference.floor
            if self.verbose:
                print(f"quality card at {self.size} px against {self._reference.real.count} "
                      f"paintings; floors (half of them against the other): SWD "
                      f"{floor['swd']:.1f}, palette {floor['palette']:.2f}, spectrum "
                      f"{floor['spectrum']:.2f} dB, checkerboard {floor['checkerboard']:.2f} dB, "
                      f"memorization {floor['memorization']:.3f}", flush=True)
        generator = getattr(self.model, self.generator)
        # numpy batches: the generator's jitted JAX call takes no TensorFlow tensors.
        translated = np.concatenate([
            _resized(translate_to_uint8(generator, batch), self.size)
            for batch in self.photos.batch(self.batch_size).as_numpy_iterator()])
        return self._reference.card(translated, self._photos)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        # An epoch cut short (a signal, the time budget) is not scored: the save comes first.
        if (epoch + 1) % self.every_n_epochs or self.model.stop_training:
            logs.update({key: math.nan for key in CARD_KEYS})
            return
        measures = self.score()["measures"]
        logs.update({key: math.nan if measures[key[5:]] is None else float(measures[key[5:]])
                     for key in CARD_KEYS})
        if self.verbose:
            logging.info("epoch %d: quality card score %.3f (SWD %.1f, palette %.2f, spectrum "
                         "%.2f dB)", epoch + 1, measures["score"], measures["swd"],
                         measures["palette"], measures["spectrum"])
        if measures["score"] < self.best and not measures["memorized"]:
            self.best = measures["score"]
            if self.on_new_best is not None:
                self.on_new_best(epoch, measures["score"])
