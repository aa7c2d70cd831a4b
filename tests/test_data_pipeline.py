"""monet_tf.data.train_dataset: independent repetition of the domains, epochs of photos, static
shapes, reproducible batches, augmentation and distribution over 2 logical CPU replicas."""

import collections

import numpy as np
import pytest
import tensorflow as tf

from monet_tf import data
from tests.data_files import colour_shard, colours, data_config, pixel_colours

PHOTOS, MONETS = colours(12), colours(3, 100)


@pytest.fixture
def solid_sources(tmp_path):
    """12 solid-colour photos and 3 solid-colour paintings, 40 px, lossless."""
    colour_shard(tmp_path / "photo_tfrec" / "photo00-12.tfrec", PHOTOS, "p", size=40)
    colour_shard(tmp_path / "monet_tfrec" / "monet00-3.tfrec", MONETS, "m", "monet", size=40)
    sources = data.find_sources(str(tmp_path))
    return sources, data.validate(sources, min_image_size=16)


def colour_batches(ds, n):
    return [(pixel_colours(p), pixel_colours(m)) for p, m in ds.take(n)]


def test_paintings_never_cut_an_epoch_of_photos_short(solid_sources):
    """3 paintings, 12 photos, batch 2: an epoch is 6 steps and holds every photo exactly once;
    the paintings are repeated as often as needed, each pass a permutation of the 3."""
    sources, report = solid_sources
    cfg = data_config()
    assert data.steps_per_epoch(report, cfg, 2) == 6
    batches = colour_batches(data.train_dataset(sources, report, cfg, 2, seed=0), 12)
    photos = [c for p, _ in batches for c in p]
    monets = [c for _, m in batches for c in m]
    assert sorted(photos[:12]) == sorted(PHOTOS) and sorted(photos[12:]) == sorted(PHOTOS)
    for start in range(0, 24, 3):
        assert sorted(monets[start:start + 3]) == sorted(MONETS)
    assert photos[:12] != photos[12:]  # Reshuffled every pass.


def test_same_seed_same_batches_other_seed_other_batches(sample_dir):
    cfg = data_config(jitter=True, flip=True, cache=False, shuffle_buffer=16)
    sources = data.find_sources(str(sample_dir))
    report = data.validate(sources)

    def first(seed):
        return [(p.numpy(), m.numpy()) for p, m in
                data.train_dataset(sources, report, cfg, 4, seed).take(5)]

    a, b, c = first(7), first(7), first(8)
    for (p1, m1), (p2, m2) in zip(a, b):
        np.testing.assert_array_equal(p1, p2)
        np.testing.assert_array_equal(m1, m2)
    assert not np.array_equal(a[0][0], c[0][0])


def test_static_shapes_range_and_resize_to_any_size(sample_dir):
    """Batches are [global_batch, S, S, 3] float32 in [-1, 1], static inside a tf.function too,
    for 256 px sample images resized to 128 and 48."""
    sources = data.find_sources(str(sample_dir))
    report = data.validate(sources)
    for size in (128, 48):
        cfg = data_config(image_size=size, jitter=True, flip=True)
        ds = data.train_dataset(sources, report, cfg, 3, seed=0)
        spec = tf.TensorSpec([3, size, size, 3], tf.float32)
        assert ds.element_spec == (spec, spec)

        @tf.function
        def shapes(dataset):
            for photo, monet in dataset.take(2):
                assert photo.shape.as_list() == [3, size, size, 3]  # At trace time.
                assert monet.shape.as_list() == [3, size, size, 3]
            return tf.constant(0)

        shapes(ds)
        photo, monet = next(iter(ds))
        for batch in (photo.numpy(), monet.numpy()):
            assert batch.min() >= -1.0 and batch.max() <= 1.0 and batch.std() > 0.1


def test_jitter_and_flip_change_an_image_as_configured():
    """augment(): no-op without jitter/flip; flip mirrors; jitter upscales 1.12x and crops."""
    ramp = np.tile(np.arange(32, dtype=np.uint8)[None, :, None] * 8, (32, 1, 3))
    image = tf.constant(ramp)
    plain = data.augment(image, tf.constant([0, 0], tf.int64), data_config())
    np.testing.assert_allclose(plain.numpy(), ramp / 127.5 - 1.0, atol=1e-6)
    flips = {bool(np.all(np.diff(data.augment(image, tf.constant([0, s], tf.int64),
                                              data_config(flip=True)).numpy()[0, :, 0]) < 0))
             for s in range(0, 40, 4)}
    assert flips == {True, False}  # Some seeds mirror the ramp, others do not.
    crops = {tuple(np.round(data.augment(image, tf.constant([1, s], tf.int64),
                                         data_config(jitter=True)).numpy()[0, :2, 0], 3))
             for s in range(0, 40, 4)}
    assert len(crops) > 1  # Different crop offsets.
    assert data.pipeline.jitter_size(data_config(image_size=256, jitter=True)) == 286


def test_distributed_over_two_logical_cpus(two_cpu_strategy, solid_sources):
    """A global batch of 4 splits into per-replica batches of 2 whose union is the global batch."""
    sources, report = solid_sources
    assert two_cpu_strategy.num_replicas_in_sync == 2
    expected = colour_batches(data.train_dataset(sources, report, data_config(), 4, seed=0), 3)
    # A new dataset with the same seed: a second iterator of one dataset would continue its
    # shuffle's seed sequence.
    ds = data.train_dataset(sources, report, data_config(), 4, seed=0)
    dist = two_cpu_strategy.experimental_distribute_dataset(ds)
    for (want_p, want_m), (photo, monet) in zip(expected, dist):
        per_replica = two_cpu_strategy.experimental_local_results(photo)
        assert [t.shape.as_list() for t in per_replica] == [[2, 32, 32, 3]] * 2
        assert [t.device.endswith(f"CPU:{i}") for i, t in enumerate(per_replica)] == [True] * 2
        got = [c for t in per_replica for c in pixel_colours(t)]
        assert collections.Counter(got) == collections.Counter(want_p)
        got = [c for t in two_cpu_strategy.experimental_local_results(monet)
               for c in pixel_colours(t)]
        assert collections.Counter(got) == collections.Counter(want_m)
