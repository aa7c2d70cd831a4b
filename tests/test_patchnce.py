"""PatchNCE: the loss against the paper's formula, the projection head, patch sampling, and
the module importing without TensorFlow."""

import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

from monet_tf.models.patchnce import (
    ProjectionHead,
    gather_patches,
    l2_normalize,
    patch_nce_loss,
    sample_locations,
)

REPO = pathlib.Path(__file__).resolve().parents[1]
TAU = 0.07


def _unit(rng, *shape):
    x = rng.normal(size=shape).astype("float32")
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _paper_loss(query, positive, tau=TAU):
    """-log(exp(q_i.k_i/tau) / (exp(q_i.k_i/tau) + sum_{j != i} exp(q_i.k_j/tau))), per image."""
    batch, patches, _ = query.shape
    loss = np.zeros((batch, patches))
    for b in range(batch):
        for i in range(patches):
            logits = np.array([query[b, i] @ positive[b, j] for j in range(patches)], "float64")
            logits /= tau
            others = np.exp(np.delete(logits, i)).sum()
            loss[b, i] = -np.log(np.exp(logits[i]) / (np.exp(logits[i]) + others))
    return loss


def test_loss_matches_the_paper_formula():
    rng = np.random.default_rng(0)
    query, positive = _unit(rng, 2, 5, 8), _unit(rng, 2, 5, 8)
    loss = np.asarray(patch_nce_loss(query, positive, TAU))
    assert loss.shape == (2, 5) and loss.dtype == np.float32
    np.testing.assert_allclose(loss, _paper_loss(query, positive), rtol=1e-5, atol=1e-5)


def test_negatives_come_only_from_the_same_image():
    rng = np.random.default_rng(1)
    query, positive = _unit(rng, 2, 5, 8), _unit(rng, 2, 5, 8)
    other_query, other_positive = query.copy(), positive.copy()
    other_query[1], other_positive[1] = _unit(rng, 5, 8), _unit(rng, 5, 8)
    loss = np.asarray(patch_nce_loss(query, positive))
    other = np.asarray(patch_nce_loss(other_query, other_positive))
    np.testing.assert_array_equal(loss[0], other[0])
    assert not np.allclose(loss[1], other[1])


def test_loss_is_float32_for_bfloat16_features():
    rng = np.random.default_rng(2)
    query = ops.cast(_unit(rng, 1, 4, 8), "bfloat16")
    loss = patch_nce_loss(query, query)
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"


def test_matching_positives_give_the_lowest_loss():
    rng = np.random.default_rng(3)
    positive = _unit(rng, 2, 5, 8)
    matched = np.asarray(patch_nce_loss(positive, positive)).mean(axis=1)
    shuffled = np.asarray(patch_nce_loss(positive, positive[:, [1, 2, 3, 4, 0]])).mean(axis=1)
    unrelated = np.asarray(patch_nce_loss(_unit(rng, 2, 5, 8), positive)).mean(axis=1)
    assert np.all(matched < shuffled) and np.all(matched < unrelated)
    assert np.all(matched < np.log(5)) and np.all(shuffled > np.log(5))  # log 5: chance


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="uses tf.GradientTape")
def test_adam_pulls_learnable_queries_onto_their_positives():
    import tensorflow as tf

    rng = np.random.default_rng(4)
    query = keras.Variable(rng.normal(size=(1, 16, 8)).astype("float32"), name="query")
    positive = ops.convert_to_tensor(rng.normal(size=(1, 16, 8)).astype("float32"))
    head = ProjectionHead(seed=0)
    head(positive)
    variables = [query, *head.trainable_variables]
    optimizer = keras.optimizers.Adam(1e-2)
    optimizer.build(variables)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = ops.mean(patch_nce_loss(head(query), head(positive)))
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    initial = float(step())
    for _ in range(300):
        final = float(step())
    assert final < initial / 2, (initial, final)


def test_projection_head_is_lazy_unit_norm_and_seeded():
    patches = np.random.default_rng(5).normal(size=(2, 6, 12)).astype("float32")
    head = ProjectionHead(seed=7)
    assert not head.weights
    out = np.asarray(head(patches))
    assert out.shape == (2, 6, 256)
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, rtol=1e-5)
    kernel = np.asarray(head.hidden.kernel)
    assert kernel.shape == (12, 256) and abs(kernel.std() - 0.02) < 0.002
    assert not np.asarray(head.hidden.bias).any()
    twin = ProjectionHead(seed=7)
    twin(patches)
    for a, b in zip(head.weights, twin.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(kernel[:, :12], np.asarray(head.projection.kernel)[:12, :12])


def test_l2_normalize_gives_unit_rows_and_keeps_zero_rows_finite():
    x = np.array([[3.0, 4.0], [0.0, 0.0]], "float32")
    np.testing.assert_allclose(np.asarray(l2_normalize(x)), [[0.6, 0.8], [0.0, 0.0]], atol=1e-6)


def test_sample_locations_are_distinct_in_range_and_seeded():
    indices = np.asarray(sample_locations(3, 6, 5, 8))
    assert indices.dtype == np.int32 and indices.shape == (8,)
    assert len(set(indices.tolist())) == 8 and indices.min() >= 0 and indices.max() < 30
    np.testing.assert_array_equal(indices, np.asarray(sample_locations(3, 6, 5, 8)))
    first = np.asarray(sample_locations(keras.random.SeedGenerator(9), 6, 5, 8))
    again = np.asarray(sample_locations(keras.random.SeedGenerator(9), 6, 5, 8))
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(np.asarray(sample_locations(3, 2, 3, 8)), np.arange(6))


def test_gather_patches_takes_the_same_locations_of_every_image():
    features = np.arange(2 * 3 * 4 * 2, dtype="float32").reshape(2, 3, 4, 2)
    indices = np.array([5, 0, 11], "int32")
    patches = np.asarray(gather_patches(features, indices))
    np.testing.assert_array_equal(patches, features.reshape(2, 12, 2)[:, indices])


NO_TENSORFLOW = """
import sys
sys.modules["tensorflow"] = None  # Any `import tensorflow` now raises ImportError.
import keras
import numpy as np
from monet_tf.models.patchnce import (ProjectionHead, gather_patches, patch_nce_loss,
                                      sample_locations)
features = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype("float32")
indices = sample_locations(keras.random.SeedGenerator(0), 4, 4, 5)
head = ProjectionHead(units=8, seed=0)
patches = head(gather_patches(features, indices))
loss = float(keras.ops.mean(patch_nce_loss(patches, patches)))
print("backend", keras.backend.backend(), "loss finite", np.isfinite(loss))
print("tensorflow imported:", any(m.split(".")[0] == "tensorflow" for m, v in sys.modules.items()
                                  if v is not None))
"""


def test_module_imports_and_computes_without_tensorflow():
    pytest.importorskip("jax")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env.update(PYTHONPATH=str(REPO), KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", NO_TENSORFLOW], capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "backend jax loss finite True" in result.stdout
    assert "tensorflow imported: False" in result.stdout
