"""InceptionV3 feature path with randomly initialised weights: shapes, scaling, strategies, weights files."""

import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from monet_tf.scoring import inception

# Its module fixture serves every test here: one xdist worker runs them all (--dist loadgroup).
pytestmark = pytest.mark.xdist_group("inception")


@pytest.fixture(scope="module")
def random_features():
    keras.utils.set_random_seed(0)
    return inception.InceptionFeatures(None, batch_size=2)


def _images(n=5, h=40, w=48, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


def test_to_inception_input_resizes_and_scales_uint8_and_float():
    uint8 = tf.constant([[[[0, 255, 127]]]], tf.uint8)  # 1x1 image
    x = inception.to_inception_input(uint8)
    assert x.shape == (1, 299, 299, 3) and x.dtype == tf.float32
    np.testing.assert_allclose(x[0, 150, 150].numpy(), [-1.0, 1.0, 127 / 127.5 - 1], atol=1e-6)
    floats = tf.random.uniform([2, 64, 32, 3], -1, 1)
    y = inception.to_inception_input(floats)
    assert y.shape == (2, 299, 299, 3)
    assert float(tf.reduce_min(y)) >= -1.0 and float(tf.reduce_max(y)) <= 1.0


def test_features_have_shape_are_deterministic_and_input_kind_agnostic(random_features):
    images = _images()
    features = random_features(images)
    assert features.shape == (5, inception.FEATURE_DIM) and features.dtype == np.float32
    assert np.isfinite(features).all() and features.std() > 0
    assert not np.allclose(features[0], features[1])  # different images, different features
    np.testing.assert_array_equal(random_features(images), features)
    # Same pixels as [-1, 1] floats, as a dataset of (name, image) pairs, and pre-batched.
    floats = images.astype(np.float32) / 127.5 - 1.0
    np.testing.assert_allclose(random_features(floats), features, rtol=1e-4, atol=1e-6)
    named = tf.data.Dataset.from_tensor_slices((tf.constant(["a"] * 5), images))
    np.testing.assert_allclose(random_features(named), features, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(random_features(tf.data.Dataset.from_tensor_slices(images).batch(3)),
                               features, rtol=1e-4, atol=1e-6)


def test_two_replicas_give_the_default_strategy_result_for_uneven_n(random_features, two_cpu_strategy):
    images = _images(seed=1)  # N=5, batch 2 per replica: one full global batch of 4, then 1 + padding
    expected = random_features(images)
    mirrored = inception.InceptionFeatures(None, strategy=two_cpu_strategy, batch_size=2)
    assert mirrored.global_batch_size == 4
    mirrored.model.set_weights(random_features.model.get_weights())
    got = mirrored(tf.data.Dataset.from_tensor_slices(images))
    assert got.shape == (5, 2048)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_transform_runs_per_replica_before_features(random_features, two_cpu_strategy):
    images = _images(n=3, h=32, w=32, seed=2)
    floats = tf.data.Dataset.from_tensor_slices(images.astype(np.float32) / 127.5 - 1.0)
    flipped = random_features(images[:, :, ::-1])
    got = random_features(floats, transform=lambda x: tf.reverse(x, axis=[2]))
    np.testing.assert_allclose(got, flipped, rtol=1e-4, atol=1e-6)


def test_weights_files_in_every_documented_format_load(tmp_path, random_features):
    source = random_features.model
    weights_h5 = str(tmp_path / "inception.weights.h5")
    source.save_weights(weights_h5)
    renamed = str(tmp_path / "inception_renamed.h5")
    shutil.copyfile(weights_h5, renamed)
    full_keras = str(tmp_path / "inception.keras")
    source.save(full_keras)
    legacy_h5 = str(tmp_path / "legacy_model.h5")
    source.save(legacy_h5)  # legacy HDF5 full model, the format of Keras' own notop file
    expected = source.get_weights()
    for path in (weights_h5, renamed, full_keras, legacy_h5):
        loaded = inception.build_inception(path).get_weights()
        assert len(loaded) == len(expected)
        assert all(np.array_equal(a, b) for a, b in zip(loaded, expected)), path


def test_bad_weights_give_errors_that_name_the_file_and_both_options(tmp_path):
    missing = str(tmp_path / "nope.h5")
    with pytest.raises(inception.InceptionWeightsError) as err:
        inception.build_inception(missing)
    assert missing in str(err.value) and "--inception_weights" in str(err.value)
    assert "ImageNet" in str(err.value)
    with pytest.raises(inception.InceptionWeightsError, match="directory"):
        inception.build_inception(str(tmp_path))
    text = tmp_path / "weights.txt"
    text.write_text("x")
    with pytest.raises(inception.InceptionWeightsError, match="unsupported file type"):
        inception.build_inception(str(text))
    wrong = tmp_path / "small.weights.h5"
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save_weights(str(wrong))
    with pytest.raises(inception.InceptionWeightsError, match="could not load InceptionV3 weights from"):
        inception.build_inception(str(wrong))
