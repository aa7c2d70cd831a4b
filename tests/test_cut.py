"""CUT / FastCUT on TensorFlow: the kinds' settings, the projection heads in the checkpoint,
training that reduces PatchNCE, and losses that do not depend on how the batch is split over
replicas. Exact resume is in test_train.py / test_train_jax.py; the JAX step in test_step_jax.py.
Tiny models (32 px, width 8)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from monet_tf.config import base_config
from monet_tf.models.cut import CUT, cut_settings
from monet_tf.models.families import build_model

SIZE = 32


def cut_config(kind="cut", **loss):
    cfg = base_config()
    cfg.model.kind = kind
    cfg.data.image_size = SIZE
    cfg.model.generator = "resnet_2blocks"
    cfg.loss.nce_layers = "padded_input,down_1,down_2,block_1,block_2"
    cfg.model.ngf = 8
    cfg.model.ndf = 8
    cfg.loss.nce_patches = 32
    cfg.train.jit_compile = "false"
    cfg.train.mixed_precision = "float32"
    cfg.loss.update(loss)
    return cfg


def batches(global_batch=2, n=3, seed=0):
    rng = np.random.default_rng(seed)
    photo = rng.uniform(-1, 1, (n * global_batch, SIZE, SIZE, 3)).astype("float32")
    monet = rng.uniform(-1, 1, (n * global_batch, SIZE, SIZE, 3)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((photo, monet)).batch(global_batch, drop_remainder=True)


def weights(model):
    return {name: [v.numpy().copy() for v in getattr(model, name).trainable_variables]
            for name in model.NETWORKS}


@pytest.mark.parametrize("kind,expected", [
    ("cut", {"nce_weight": 1.0, "nce_identity": True, "flip_equivariance": False}),
    ("fastcut", {"nce_weight": 10.0, "nce_identity": False, "flip_equivariance": True}),
])
def test_each_kind_has_the_reference_settings_and_the_config_overrides_them(kind, expected):
    assert cut_settings(cut_config(kind)) == expected
    overridden = cut_settings(cut_config(kind, nce_weight=2.0, nce_identity="false",
                                         nce_flip_equivariance="true"))
    assert overridden == {"nce_weight": 2.0, "nce_identity": False, "flip_equivariance": True}
    model = build_model(cut_config(kind), steps_per_epoch=1, global_batch_size=2)
    assert isinstance(model, CUT) and model.name == kind
    assert (model.nce_weight, model.nce_identity, model.flip_equivariance) == tuple(
        expected.values())
    assert model.GENERATORS == ("photo_to_monet",) and not hasattr(model, "monet_to_photo")


def test_bad_cut_settings_name_the_field():
    with pytest.raises(ValueError, match="loss.nce_identity='maybe' must be auto, true or false"):
        cut_settings(cut_config(nce_identity="maybe"))
    cfg = cut_config()
    cfg.model.generator = "unet_128"
    cfg.data.image_size = 128
    with pytest.raises(ValueError, match="needs a ResNet generator"):
        build_model(cfg, steps_per_epoch=1, global_batch_size=1)
    with pytest.raises(ValueError, match="has no layer block_7; its encoder features are "
                                         "padded_input, down_1, down_2, block_1"):
        build_model(cut_config(nce_layers="down_1,block_7"), steps_per_epoch=1,
                    global_batch_size=1)


def test_heads_exist_before_the_first_step_and_restore_from_a_checkpoint(tmp_path):
    model = build_model(cut_config(), steps_per_epoch=2, global_batch_size=2)
    heads = model.nce_heads
    # One 2-layer head per encoder layer, sized from that layer's channels (ngf 8: 3, 16, 32...).
    kernels = [h.hidden.kernel.shape for h in heads.heads]
    assert kernels == [(3, 256), (16, 256), (32, 256), (32, 256), (32, 256)]
    assert len(heads.trainable_variables) == 20
    assert model.nce_heads_optimizer.built and len(model.nce_heads_optimizer.variables) > 2
    model.fit(batches().repeat(), steps_per_epoch=2, epochs=1, verbose=0)
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    keys = tf.train.list_variables(path)
    assert any("nce_heads" in key for key, _ in keys), keys[:20]

    fresh = build_model(cut_config(), steps_per_epoch=2, global_batch_size=2)
    assert not np.array_equal(fresh.nce_heads.trainable_variables[0].numpy(),
                              heads.trainable_variables[0].numpy())
    tf.train.Checkpoint(model=fresh).restore(path).assert_existing_objects_matched()
    for a, b in zip(weights(fresh).values(), weights(model).values()):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    assert int(fresh.nce_heads_optimizer.iterations.numpy()) == 2


def test_the_generator_loss_trains_the_generator_and_heads_the_critic_loss_the_critic():
    model = build_model(cut_config(), steps_per_epoch=1, global_batch_size=2)
    before = weights(model)
    model.fit(batches(n=1), epochs=1, verbose=0)
    after = weights(model)
    for name in model.NETWORKS:
        assert all(not np.array_equal(a, b) for a, b in zip(before[name], after[name])
                   if a.ndim > 1), name


def test_training_reduces_the_patch_nce_loss():
    """200 steps on four photos: each translated patch learns to pick out its own source patch
    among the image's other 31 (chance: ln 32 = 3.47)."""
    cfg = cut_config("fastcut", nce_flip_equivariance="false")
    cfg.train.jit_compile = "true"
    model = build_model(cfg, steps_per_epoch=200, global_batch_size=2)
    rng = np.random.default_rng(1)
    # Smooth colour fields: patches differ by where they are, as in photos.
    grid = np.linspace(-1, 1, SIZE)
    photos = np.stack([np.stack([np.sin(3 * a * grid[:, None] + b * grid[None, :]) * np.ones(
        (SIZE, SIZE)) for b in rng.uniform(1, 4, 3)], -1) for a in rng.uniform(0.5, 2, 4)])
    paintings = rng.uniform(-1, 1, photos.shape)
    data = tf.data.Dataset.from_tensor_slices((photos.astype("float32"),
                                               paintings.astype("float32")))
    history = model.fit(data.repeat().batch(2, drop_remainder=True), steps_per_epoch=20,
                        epochs=10, verbose=0).history
    nce = history["nce_loss"]
    assert nce[0] > 2.0
    assert nce[-1] < 0.5 * nce[0], nce


def _one_replica_vs_two(strategy_two, cfg, steps):
    results = []
    for strategy in (tf.distribute.get_strategy(), strategy_two):
        with strategy.scope():
            model = build_model(cfg, steps_per_epoch=steps, global_batch_size=2)
        history = model.fit(batches(n=steps), epochs=1, verbose=0).history
        results.append((weights(model), history, model))
    (w1, h1, model), (w2, h2, _) = results
    for name in w1:
        for a, b in zip(w1[name], w2[name]):
            np.testing.assert_allclose(a, b, atol=1e-5, err_msg=name)
    for key in model.METRICS:
        assert h1[key][0] == pytest.approx(h2[key][0], rel=1e-5, abs=1e-6), key
    return model


@pytest.mark.parametrize("kind", ["cut", "fastcut"])
def test_two_replicas_equal_one_replica(two_cpu_strategy, kind):
    """1 replica x 2 images vs 2 replicas x 1: the patch locations and FastCUT's flip are the
    same on every replica and negatives never cross images, so nothing may differ."""
    cfg = cut_config(kind)
    cfg.optim.epsilon = 1e-3  # Keeps float-noise gradients from moving weights (step_runner.py).
    model = _one_replica_vs_two(two_cpu_strategy, cfg, steps=2)
    assert float(np.mean(model.history.history["nce_loss"])) > 1.0
    keras.backend.clear_session()
