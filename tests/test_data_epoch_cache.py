"""The decoded images are cached once per run and shared by every epoch's train_dataset."""

import shutil

import numpy as np
import tensorflow as tf

from monet_tf import data
from monet_tf.config import base_config
from monet_tf.data import pipeline, records


def small_config():
    cfg = base_config().data
    cfg.image_size = 32
    cfg.shuffle_buffer = 8
    cfg.heldout_fraction = 0.1
    return cfg


def batches(sources, report, cfg, seed, n=10):
    """n batches of 4: more than one pass over the sample's photos, so the cache completes."""
    return [(p.numpy(), m.numpy()) for p, m in
            data.train_dataset(sources, report, cfg, 4, seed).take(n)]


def test_epochs_share_the_cache_and_give_the_same_batches(sample_dir):
    cfg = small_config()
    sources = data.find_sources(str(sample_dir))
    report = data.validate(sources, heldout_fraction=cfg.heldout_fraction)
    cold = batches(sources, report, cfg, seed=3)  # Decodes and fills the cache.
    warm = batches(sources, report, cfg, seed=3)  # A new dataset reading the filled cache.
    for (p1, m1), (p2, m2) in zip(cold, warm):
        np.testing.assert_array_equal(p1, p2)
        np.testing.assert_array_equal(m1, m2)
    other = batches(sources, report, cfg, seed=4, n=1)
    assert not np.array_equal(other[0][0], cold[0][0])
    photos = pipeline._images(sources.photo, report.photo, 32, False, True)
    assert pipeline._images(sources.photo, report.photo, 32, False, True) is photos
    assert pipeline._images(sources.photo, report.photo, 64, False, True) is not photos


def _rewrite_inverted(path):
    """Rewrites a shard in place: same names, every image colour-inverted."""
    examples = []
    for name, image in tf.data.TFRecordDataset(str(path)).map(records.parse):
        pixels = 255 - tf.io.decode_jpeg(image)
        examples.append(records.serialize(name.numpy().decode(),
                                          tf.io.encode_jpeg(pixels, quality=95).numpy(), "photo"))
    with tf.io.TFRecordWriter(str(path)) as writer:
        for example in examples:
            writer.write(example)


def test_a_shard_rewritten_in_place_is_decoded_again(sample_dir, tmp_path):
    shutil.copytree(sample_dir, tmp_path / "data")
    cfg = small_config()
    sources = data.find_sources(str(tmp_path / "data"))
    report = data.validate(sources, heldout_fraction=cfg.heldout_fraction)
    before = batches(sources, report, cfg, seed=0)
    for shard in sources.photo.files:
        _rewrite_inverted(shard)
    report_again = data.validate(sources, heldout_fraction=cfg.heldout_fraction)
    assert report_again == report  # Same names and counts: only the pixels changed.
    after = batches(sources, report_again, cfg, seed=0)
    # Inverted photos: mean pixel x becomes about -x; the paintings are untouched.
    assert np.mean([np.abs(a[0] + b[0]).mean() for a, b in zip(before, after)]) < 0.1
    for (_, m1), (_, m2) in zip(before, after):
        np.testing.assert_array_equal(m1, m2)
