"""CycleGAN training step: fit, metrics, loss wiring, optimizer ownership, distribution, XLA,
mixed precision and checkpoint/resume. Tiny models (32 px, width 8) keep it fast."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from monet_tf.config import base_config
from monet_tf.models import METRICS, CycleGAN, build_critic, build_cyclegan

SIZE = 32


def tiny_config(**train):
    cfg = base_config()
    cfg.data.image_size = SIZE
    cfg.model.generator = "resnet_2blocks"
    cfg.model.ngf = 8
    cfg.model.ndf = 8
    cfg.train.jit_compile = "false"
    cfg.train.update(train)
    return cfg


def batches(global_batch=2, seed=0, n=3):
    rng = np.random.default_rng(seed)
    photo = rng.uniform(-1, 1, (n * global_batch, SIZE, SIZE, 3)).astype("float32")
    monet = rng.uniform(-1, 1, (n * global_batch, SIZE, SIZE, 3)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((photo, monet)).batch(global_batch, drop_remainder=True)


def weights(model):
    return {
        name: [v.numpy().copy() for v in getattr(model, name).trainable_variables]
        for name in ("photo_to_monet", "monet_to_photo", "monet_critic", "photo_critic")
    }


def test_fit_returns_named_metrics_and_builds_everything_first():
    cfg = tiny_config()
    cfg.loss.diffaugment = "color,translation,cutout"
    cfg.model.critic_noise = 0.05
    model = build_cyclegan(cfg, steps_per_epoch=2, global_batch_size=2)
    # Optimizer slots exist before any step (checkpoint restore needs them).
    for opt in (model.photo_to_monet_optimizer, model.monet_critic_optimizer):
        assert opt.built and len(opt.variables) > 2
    history = model.fit(batches().repeat(), steps_per_epoch=2, epochs=2, verbose=0).history
    assert set(history) == set(METRICS) and "loss" not in history
    assert all(np.isfinite(v).all() and len(v) == 2 for v in history.values())
    assert int(model.photo_to_monet_optimizer.iterations) == 4
    # 4 steps x 2 images stored in each (not yet full) pool.
    assert int(model.monet_pool.count.value) == 8 and int(model.photo_pool.count.value) == 8


class Scale(keras.layers.Layer):
    """A 'generator' that multiplies its input by a trainable scalar (for exact loss checks)."""

    def __init__(self, value, **kwargs):
        super().__init__(**kwargs)
        self.value = value

    def build(self, input_shape):
        self.s = self.add_weight(shape=(), initializer=keras.initializers.Constant(self.value))

    def call(self, x):
        return x * self.s


def scale_generator(value, name):
    x = keras.Input((SIZE, SIZE, 3))
    return keras.Model(x, Scale(value)(x), name=name)


def test_identity_and_cycle_terms_go_the_right_way():
    # photo_to_monet halves, monet_to_photo is the identity. Photos are 0.2, paintings 0.8.
    model = CycleGAN(
        scale_generator(0.5, "photo_to_monet"),
        scale_generator(1.0, "monet_to_photo"),
        build_critic(ndf=4, seed=0),
        build_critic(ndf=4, seed=1),
        image_size=SIZE,
        pool_size=0,
    )
    model.compile(*[keras.optimizers.SGD(0.0) for _ in range(4)], jit_compile=False)
    photo = np.full((2, SIZE, SIZE, 3), 0.2, "float32")
    monet = np.full((2, SIZE, SIZE, 3), 0.8, "float32")
    logs = model.train_step((tf.constant(photo), tf.constant(monet)))
    # identity: |monet - p2m(monet)| + |photo - m2p(photo)| = 0.4 + 0 (a photo fed to
    # photo_to_monet would give 0.1 instead).
    assert float(logs["identity_loss"]) == pytest.approx(0.4, abs=1e-6)
    # cycle: |photo - m2p(p2m(photo))| + |monet - p2m(m2p(monet))| = 0.1 + 0.4
    assert float(logs["cycle_loss"]) == pytest.approx(0.5, abs=1e-6)
    total = logs["monet_gen_loss"] + logs["photo_gen_loss"] + 10 * 0.5 + 5 * 0.4
    assert float(logs["gen_total_loss"]) == pytest.approx(float(total), rel=1e-6)


def test_each_optimizer_moves_only_its_own_network():
    cfg = tiny_config()
    model = build_cyclegan(cfg, steps_per_epoch=1, global_batch_size=2)
    ids = lambda vs: {id(v) for v in vs}  # noqa: E731
    for net, opt in (
        (model.photo_to_monet, model.photo_to_monet_optimizer),
        (model.monet_to_photo, model.monet_to_photo_optimizer),
        (model.monet_critic, model.monet_critic_optimizer),
        (model.photo_critic, model.photo_critic_optimizer),
    ):
        assert ids(opt._trainable_variables) == ids(net.trainable_variables)
    # Only the monet critic's optimizer has a learning rate: only the monet critic may change.
    model = CycleGAN(*build_cyclegan_nets(cfg), image_size=SIZE, pool_size=50)
    model.compile(
        keras.optimizers.Adam(0.0),
        keras.optimizers.Adam(0.0),
        keras.optimizers.Adam(1e-3),
        keras.optimizers.Adam(0.0),
        jit_compile=False,
    )
    before = weights(model)
    model.fit(batches(), epochs=1, verbose=0)
    after = weights(model)
    for name in before:
        changed = any(not np.array_equal(a, b) for a, b in zip(before[name], after[name]))
        assert changed == (name == "monet_critic"), name


def _one_replica_vs_two(strategy_two, make_model, steps):
    """Same start and inputs: 1 replica x batch 2 vs 2 replicas x batch 1."""
    results = []
    for strategy in (tf.distribute.get_strategy(), strategy_two):
        with strategy.scope():
            model = make_model()
        history = model.fit(batches(n=steps), epochs=1, verbose=0).history
        results.append((weights(model), history))
    (w1, h1), (w2, h2) = results
    for name in w1:
        for a, b in zip(w1[name], w2[name]):
            np.testing.assert_allclose(a, b, atol=1e-5, err_msg=name)
    for key in METRICS:
        assert h1[key][0] == pytest.approx(h2[key][0], rel=1e-5, abs=1e-6), key
    start = weights(make_model())
    assert any(not np.allclose(a, b) for a, b in zip(start["monet_critic"], w1["monet_critic"]))


def test_two_replicas_equal_one_replica_sgd(two_cpu_strategy):
    """SGD is sensitive to the gradient scale, so a wrong replica reduction would show."""

    def make_model():
        cfg = tiny_config()
        model = CycleGAN(
            *(build_cyclegan_nets(cfg)), image_size=SIZE, pool_size=50, seed=0
        )
        model.compile(*[keras.optimizers.SGD(0.5) for _ in range(4)], jit_compile=False)
        return model

    _one_replica_vs_two(two_cpu_strategy, make_model, steps=1)


def test_two_replicas_equal_one_replica_adam(two_cpu_strategy):
    assert two_cpu_strategy.num_replicas_in_sync == 2
    _one_replica_vs_two(
        two_cpu_strategy,
        lambda: build_cyclegan(tiny_config(), steps_per_epoch=2, global_batch_size=2),
        steps=2,
    )


def build_cyclegan_nets(cfg):
    from monet_tf.models import build_generator

    return (
        build_generator("resnet_2blocks", ngf=8, image_size=SIZE, seed=10, model_name="p2m"),
        build_generator("resnet_2blocks", ngf=8, image_size=SIZE, seed=11, model_name="m2p"),
        build_critic(ndf=8, image_size=SIZE, seed=12, model_name="mc"),
        build_critic(ndf=8, image_size=SIZE, seed=13, model_name="pc"),
    )


def test_jit_compiled_fit():
    cfg = tiny_config(jit_compile="true", steps_per_execution=2)
    cfg.model.ngf = 4
    cfg.model.ndf = 4
    cfg.loss.diffaugment = "color,translation,cutout"
    model = build_cyclegan(cfg, steps_per_epoch=2, global_batch_size=1)
    assert model.jit_compile
    history = model.fit(batches(global_batch=1, n=2), epochs=1, verbose=0).history
    assert all(np.isfinite(v).all() for v in history.values())
    assert int(model.optimizer.iterations) == 2


def test_xla_is_turned_off_for_logical_cpu_mirrored(two_cpu_strategy):
    with two_cpu_strategy.scope():
        model = build_cyclegan(tiny_config(jit_compile="true"), steps_per_epoch=1,
                               global_batch_size=2)
    assert not model.jit_compile


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_step_on_cpu(policy):
    keras.config.set_dtype_policy(policy)
    try:
        cfg = tiny_config()
        cfg.model.ngf = 4
        cfg.model.ndf = 4
        model = build_cyclegan(cfg, steps_per_epoch=1, global_batch_size=1)
        assert model.photo_to_monet.layers[2].compute_dtype == policy.split("_")[1]
        assert (model.generator_loss_scale is not None) == (policy == "mixed_float16")
        history = model.fit(batches(global_batch=1, n=1), epochs=1, verbose=0).history
        out = model.photo_to_monet(np.zeros((1, SIZE, SIZE, 3), "float32"))
    finally:
        keras.config.set_dtype_policy("float32")
    assert out.dtype == "float32"
    assert all(np.isfinite(v).all() for v in history.values())


def test_checkpoint_resume(tmp_path):
    cfg = tiny_config()
    cfg.loss.diffaugment = "translation"

    def make():
        model = build_cyclegan(cfg, steps_per_epoch=2, global_batch_size=2)
        optimizers = {
            n: getattr(model, f"{n}_optimizer")
            for n in ("photo_to_monet", "monet_to_photo", "monet_critic", "photo_critic")
        }
        return model, tf.train.Checkpoint(model=model, **optimizers)

    model, ckpt = make()
    model.fit(batches(n=3), epochs=1, verbose=0)
    path = ckpt.save(str(tmp_path / "ckpt"))
    fresh, fresh_ckpt = make()
    fresh_ckpt.restore(path).assert_consumed()
    assert int(fresh.monet_critic_optimizer.iterations) == 3
    np.testing.assert_array_equal(fresh.rng.state.numpy(), model.rng.state.numpy())
    np.testing.assert_array_equal(fresh.monet_pool.images.numpy(), model.monet_pool.images.numpy())
    assert int(fresh.photo_pool.count.value) == 6
    # The same next step from both.
    for m in (model, fresh):
        m.fit(batches(seed=5, n=1), epochs=1, verbose=0)
    for name, ws in weights(model).items():
        for a, b in zip(ws, weights(fresh)[name]):
            np.testing.assert_allclose(a, b, atol=1e-6)


def _sgd_model(loss_scaling):
    """SGD at a small rate: the weights move by exactly -lr x gradient, so equal weights after
    a step mean equal gradients (Adam would turn float noise into whole steps)."""
    model = build_cyclegan(tiny_config(), steps_per_epoch=2, global_batch_size=2)
    model.compile(*[keras.optimizers.SGD(1e-3) for _ in range(4)], jit_compile=False,
                  loss_scaling=loss_scaling)
    return model


def test_loss_scaling_changes_nothing_but_the_scale(two_cpu_strategy):
    """float32 compute, so only the scaling differs: 2 steps scaled (one and two replicas) give
    the unscaled gradients, and each loss's scale stays put while its gradients are finite."""
    start = weights(_sgd_model(False))
    plain = _sgd_model(False)
    plain.fit(batches(n=2), epochs=1, verbose=0)
    for strategy in (tf.distribute.get_strategy(), two_cpu_strategy):
        with strategy.scope():
            scaled = _sgd_model(True)
        scaled.fit(batches(n=2), epochs=1, verbose=0)
        for name, ws in weights(plain).items():
            assert any(np.abs(a - b).max() > 1e-4 for a, b in zip(ws, start[name])), name
            for a, b in zip(ws, weights(scaled)[name]):
                np.testing.assert_allclose(a, b, atol=2e-5, err_msg=name)
        for loss_scale in (scaled.generator_loss_scale, scaled.critic_loss_scale):
            assert float(loss_scale.scale.numpy()) == 2.0**15
            assert int(loss_scale.good_steps.numpy()) == 2
        assert int(scaled.photo_to_monet_optimizer.iterations.numpy()) == 2


def test_non_finite_gradients_on_one_replica_skip_the_step_on_all(two_cpu_strategy):
    """An infinite pixel in replica 1's photo only: both replicas skip (no weight moves), the
    scales halve, and the step still counts (the schedule and the resume offset use it)."""
    with two_cpu_strategy.scope():
        model = _sgd_model(True)
    start = weights(model)

    def poison(photo, monet):
        return tf.tensor_scatter_nd_update(photo, [[1, 0, 0, 0]], [np.inf]), monet

    model.fit(batches(n=1).map(poison), epochs=1, verbose=0)
    for name, ws in weights(model).items():
        for a, b in zip(ws, start[name]):
            np.testing.assert_array_equal(a, b, err_msg=name)
    assert float(model.generator_loss_scale.scale.numpy()) == 2.0**14
    for name in ("photo_to_monet", "monet_to_photo", "monet_critic", "photo_critic"):
        assert int(getattr(model, f"{name}_optimizer").iterations.numpy()) == 1, name


def test_loss_scale_grows_after_a_run_of_finite_steps_and_never_drops_below_one():
    from monet_tf.models.steps.loss_scale import DynamicLossScale

    loss_scale = DynamicLossScale(initial_scale=4.0, growth_steps=2)
    seen = []
    for finite in (True, True, True, False, False, False, False, True):
        loss_scale.update(tf.constant(finite))
        seen.append((float(loss_scale.scale.numpy()), int(loss_scale.good_steps.numpy())))
    assert seen == [(4.0, 1), (8.0, 0), (8.0, 1), (4.0, 0), (2.0, 0), (1.0, 0), (1.0, 0),
                    (1.0, 1)]


def test_two_replicas_draw_their_own_random_numbers_in_training(two_cpu_strategy):
    """Both replicas get the same images for 5 steps, pool size 1 (full after one step) and
    DiffAugment on: everything they compute is equal but their random draws, so their pools
    end up different only if each replica draws its own numbers (a pool can still match by
    chance: a swap is a coin toss per step)."""
    cfg = tiny_config()
    cfg.loss.pool_size = 1
    cfg.loss.diffaugment = "color,translation,cutout"
    with two_cpu_strategy.scope():
        model = build_cyclegan(cfg, steps_per_epoch=5, global_batch_size=2)
    one = batches(global_batch=1, n=5)
    same_on_both = one.map(lambda p, m: (tf.concat([p, p], 0), tf.concat([m, m], 0)))
    history = model.fit(same_on_both, epochs=1, verbose=0).history
    assert all(np.isfinite(v).all() for v in history.values())
    differ = []
    for pool in (model.monet_pool, model.photo_pool):
        first, second = (v.numpy() for v in two_cpu_strategy.experimental_local_results(
            pool.images.value))
        assert np.abs(first).sum() > 0 and np.abs(second).sum() > 0, pool.name
        differ.append(not np.array_equal(first, second))
    assert any(differ)
