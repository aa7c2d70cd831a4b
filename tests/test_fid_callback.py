"""MiFIDCallback inside real fit() runs of a tiny CycleGAN (random Inception weights)."""

import csv
import math
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from monet_tf.scoring import metrics
from monet_tf.scoring.mifid_callback import SCORE_KEYS, MiFIDCallback
from monet_tf.models import build_cyclegan
from tests import wandb_records
from tests.tiny_config import get_config

SIZE = 32


def _images(n, seed):
    rng = np.random.default_rng(seed)
    return tf.data.Dataset.from_tensor_slices(rng.uniform(-1, 1, size=(n, SIZE, SIZE, 3)).astype(np.float32))


def _tiny_cyclegan(global_batch):
    cfg = get_config()
    cfg.train.jit_compile = "false"  # compile time, not what is tested here
    return build_cyclegan(cfg, steps_per_epoch=1, global_batch_size=global_batch)


def _train_data(global_batch):
    return tf.data.Dataset.zip((_images(8, 1), _images(8, 2))).repeat().batch(global_batch, drop_remainder=True)


def test_scores_reach_history_csv_wandb_and_best_hook_under_two_replicas(tmp_path, two_cpu_strategy):
    import wandb

    with two_cpu_strategy.scope():
        model = _tiny_cyclegan(global_batch=2)
    photos, monets = _images(5, 3), _images(6, 4)  # 5 photos over 2 replicas x 2: uneven
    best_calls = []
    callback = MiFIDCallback(photos=photos, monets=monets, every_n_epochs=2, batch_size=2,
                             inception_weights=None, strategy=two_cpu_strategy,
                             on_new_best=lambda epoch, mifid: best_calls.append((epoch, mifid)))
    csv_path = tmp_path / "metrics.csv"
    run = wandb.init(project="monet_tf_test", dir=str(tmp_path), mode="offline")
    try:
        history = model.fit(_train_data(2), epochs=2, steps_per_epoch=1, verbose=0,
                            callbacks=[callback, keras.callbacks.CSVLogger(str(csv_path))]).history
    finally:
        wandb.finish()
    logged = {key: value for row in wandb_records.history(pathlib.Path(run.dir).parent) if row["_step"] == 2
              for key, value in row.items()}

    scores = callback.last_scores
    for key in SCORE_KEYS:
        assert math.isnan(history[key][0])  # epoch 1 is not scored but keeps the column aligned
        assert history[key][1] == scores[key] and np.isfinite(scores[key])
        assert logged[f"eval/{key}"] == pytest.approx(scores[key])
    assert scores["mifid"] == pytest.approx(metrics.mifid(scores["fid"], scores["memorization"]))
    assert best_calls == [(1, scores["mifid"])]
    rows = list(csv.DictReader(csv_path.open()))
    assert rows[0]["mifid"] == "nan" and float(rows[1]["mifid"]) == pytest.approx(scores["mifid"])

    # The scored images are the generator's translations of the held-out photos, quantised to uint8.
    translated = model.photo_to_monet(np.stack(list(photos.as_numpy_iterator())), training=False)
    quantised = np.round(np.clip((translated.numpy() + 1) * 127.5, 0, 255)).astype(np.uint8)
    extractor = callback._features
    expected = metrics.memorization_distance(extractor(quantised), extractor(monets))
    assert scores["memorization"] == pytest.approx(expected, rel=1e-4)


def test_no_weights_warns_once_and_training_goes_on(tmp_path, capsys):
    model = _tiny_cyclegan(global_batch=1)
    missing = str(tmp_path / "no_inception.h5")
    callback = MiFIDCallback(photos=_images(2, 5), monets=_images(2, 6), every_n_epochs=1,
                             inception_weights=missing)
    history = model.fit(_train_data(1), epochs=3, steps_per_epoch=1, verbose=0, callbacks=[callback]).history
    model.fit(_train_data(1), initial_epoch=3, epochs=4, steps_per_epoch=1, verbose=0, callbacks=[callback])
    # On stderr as "warning: ...", not through absl's logging, whose lines the console filter drops.
    warnings = [line for line in capsys.readouterr().err.splitlines()
                if line.startswith("warning: MiFID scoring is OFF")]
    assert len(warnings) == 1 and missing in warnings[0]
    assert "--inception_weights" in warnings[0]
    assert callback.disabled
    assert len(history["cycle_loss"]) == 3 and not set(SCORE_KEYS) & set(history)
