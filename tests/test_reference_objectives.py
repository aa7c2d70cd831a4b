"""Every family's objective against an independent reference written here from its paper.

From the same weights and batch, the losses monet_tf logs for one training step and that step's
gradient for every network must equal a reference computed in plain TensorFlow from the papers'
formulas: CycleGAN (Zhu et al. 2017: LSGAN, BCE or hinge adversarial terms, cycle and identity L1
at the configured weights, pools off), CUT and FastCUT (Park et al. 2020: PatchNCE over the same
patches, the identity NCE, flip equivariance) and DCGAN (Radford et al. 2016: non-saturating
BCE). The reference never calls `compute_losses` or monet_tf's loss functions; it uses only the
networks (and, for PatchNCE, the projection heads' Dense weights).

The networks run in float64 (TensorFlow allows it; in float32 instance norm over near-constant
channels amplifies rounding to ~1e-3 relative and would hide small faults). monet_tf computes
its losses in float32 by design, which bounds the agreement at ~1e-6 relative. The step's
gradients are read off the weights: the model is compiled with SGD at learning rate 1, so one
step moves every weight by exactly minus its gradient.
"""

import contextlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from monet_tf.models.families import build_model
from tests import tiny_config

SIZE, BATCH = 32, 2
TAU = 0.07
# The reference's PatchNCE layers here: down_1 (16x16), down_2 and block_1 (8x8), with patches
# enough to take every location of each (in order), so no random draw separates the two sides.
NCE_LAYERS = ("down_1", "down_2", "block_1")
NCE_PATCHES = 256


@contextlib.contextmanager
def float64():
    policy, floatx = keras.config.dtype_policy(), keras.config.floatx()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        yield
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)


def _config(kind: str, gan: str = "lsgan", seed: int = 0):
    cfg = tiny_config.get_config()
    cfg.seed = seed
    cfg.model.kind = kind
    cfg.loss.gan = gan
    cfg.loss.pool_size = 0
    cfg.loss.diffaugment = ""
    cfg.loss.nce_layers = ",".join(NCE_LAYERS)
    cfg.loss.nce_patches = NCE_PATCHES
    cfg.loss.nce_units = 16
    cfg.model.latent_dim = 16
    cfg.model.dcgan_width = 16
    return cfg


def _batch(seed: int = 1):
    """float32 values (monet_tf casts its inputs to float32), held as float64."""
    rng = np.random.default_rng(seed)
    photo, monet = (rng.uniform(-1, 1, (BATCH, SIZE, SIZE, 3)).astype(np.float32) for _ in "pm")
    return tf.constant(photo, tf.float64), tf.constant(monet, tf.float64)


def _package_step(model, photo, monet) -> tuple[dict, dict]:
    """(logged losses, {network: [gradient per variable]}) of one real training step."""
    optimizers = {name: keras.optimizers.SGD(1.0, name=f"{name}_sgd") for name in model.NETWORKS}
    settings = {k: getattr(model, k) for k in ("gan_loss",)}
    if model.NETWORKS[0] == "photo_to_monet" and "monet_to_photo" in model.NETWORKS:
        settings.update(cycle_weight=model.cycle_weight, identity_weight=model.identity_weight)
    elif "nce_heads" in model.NETWORKS:
        settings.update(gan_weight=model.gan_weight, nce_weight=model.nce_weight,
                        nce_identity=model.nce_identity, temperature=model.temperature,
                        flip_equivariance=model.flip_equivariance)
    model.compile(*[optimizers[n] for n in model.NETWORKS], jit_compile=False, **settings)
    before = {n: [v.numpy().copy() for v in getattr(model, n).trainable_variables]
              for n in model.NETWORKS}
    data = tf.data.Dataset.from_tensors((photo, monet))
    history = model.fit(data, epochs=1, steps_per_epoch=1, verbose=0).history
    grads = {n: [b - v.numpy() for b, v in zip(before[n], getattr(model, n).trainable_variables)]
             for n in model.NETWORKS}
    return {k: v[-1] for k, v in history.items()}, grads


def _reference_grads(model, losses_by_group: dict, tape) -> dict:
    grads = {}
    for loss_name, names in model.LOSS_GROUPS:
        for name in names:
            variables = getattr(model, name).trainable_variables
            grads[name] = [g.numpy() for g in tape.gradient(losses_by_group[loss_name], variables)]
    return grads


def _assert_same(package: dict, reference: dict, grads: dict, reference_grads: dict):
    for name, value in reference.items():
        assert package[name] == pytest.approx(float(value), rel=2e-6, abs=1e-7), name
    for network, ref in reference_grads.items():
        scale = max(np.abs(g).max() for g in ref)
        assert scale > 0, f"{network}: the reference gives it no gradient"
        for i, (got, want) in enumerate(zip(grads[network], ref)):
            assert np.abs(got - want).max() <= 1e-5 * scale, (
                f"{network} variable {i}: {np.abs(got - want).max():.3g} off, scale {scale:.3g}")


# --- the papers' formulas ----------------------------------------------------------------

def adversarial(gan: str, real_logits, fake_logits):
    """(generator loss, critic loss): each a mean over all logits; the critic's halved (the
    mean of its real and fake terms), as pytorch-CycleGAN and monet_tf do for every family."""
    mean = tf.reduce_mean
    if gan == "lsgan":  # Mao et al.: least squares to the labels 1 (real) and 0 (fake)
        return (mean(tf.square(fake_logits - 1.0)),
                0.5 * (mean(tf.square(real_logits - 1.0)) + mean(tf.square(fake_logits))))
    if gan == "bce":  # Goodfellow et al., the non-saturating generator loss -log D(G(z))
        xent = tf.nn.sigmoid_cross_entropy_with_logits
        return (mean(xent(tf.ones_like(fake_logits), fake_logits)),
                0.5 * (mean(xent(tf.ones_like(real_logits), real_logits))
                       + mean(xent(tf.zeros_like(fake_logits), fake_logits))))
    assert gan == "hinge"  # Lim & Ye; Miyato et al.
    return (-mean(fake_logits),
            0.5 * (mean(tf.maximum(0.0, 1.0 - real_logits))
                   + mean(tf.maximum(0.0, 1.0 + fake_logits))))


def l1(a, b):
    return tf.reduce_mean(tf.abs(a - b))


@pytest.mark.parametrize("gan", ["lsgan", "bce", "hinge"])
def test_cyclegan_against_zhu_et_al(gan):
    """L = L_GAN(G, D_Y) + L_GAN(F, D_X) + lambda (|F(G(x)) - x| + |G(F(y)) - y|)
    + 0.5 lambda (|G(y) - y| + |F(x) - x|), lambda = cycle_weight = 10, 0.5 = identity_weight."""
    with float64():
        model = build_model(_config("cyclegan", gan), steps_per_epoch=1, global_batch_size=BATCH,
                            jit_compile=False)
        x, y = _batch()
        G, F = model.photo_to_monet, model.monet_to_photo
        D_Y, D_X = model.monet_critic, model.photo_critic
        lam, identity = 10.0, 0.5
        assert (model.cycle_weight, model.identity_weight) == (lam, identity)
        with tf.GradientTape(persistent=True) as tape:
            fake_y, fake_x = G(x, training=True), F(y, training=True)
            g_gan, d_y = adversarial(gan, D_Y(y, training=True), D_Y(fake_y, training=True))
            f_gan, d_x = adversarial(gan, D_X(x, training=True), D_X(fake_x, training=True))
            cycle = l1(F(fake_y, training=True), x) + l1(G(fake_x, training=True), y)
            same = l1(G(y, training=True), y) + l1(F(x, training=True), x)
            generators = g_gan + f_gan + lam * cycle + identity * lam * same
            critics = d_y + d_x
        reference = {"monet_gen_loss": g_gan, "photo_gen_loss": f_gan, "cycle_loss": cycle,
                     "identity_loss": same, "gen_total_loss": generators,
                     "monet_critic_loss": d_y, "photo_critic_loss": d_x}
        reference_grads = _reference_grads(
            model, {"gen_total_loss": generators, "critic_total_loss": critics}, tape)
        package, grads = _package_step(model, x, y)
    _assert_same(package, reference, grads, reference_grads)


def _heads(model, layer: str, patches):
    """The reference's PatchSampleF MLP and Normalize on [B, S, C] patches, from the heads'
    Dense weights: relu(p W1 + b1) W2 + b2, over its L2 norm + 1e-7."""
    head = model.nce_heads.heads[NCE_LAYERS.index(layer)]
    hidden = tf.nn.relu(patches @ head.hidden.kernel + head.hidden.bias)
    out = hidden @ head.projection.kernel + head.projection.bias
    return out / (tf.norm(out, axis=-1, keepdims=True) + 1e-7)


def patch_nce(model, encoder, source, target, flip_back: bool = False):
    """Park et al.'s PatchNCE(source, target): for every location of each layer, the target's
    patch (query) against the source's patch there (positive, detached) and the source's other
    patches of the same image (negatives, self-similarity masked at -10), softmax over tau;
    the cross-entropy averaged over patches, images and layers."""
    queries = encoder(target, training=True)
    keys = encoder(source, training=True)
    per_layer = []
    for layer, q, k in zip(NCE_LAYERS, queries, keys):
        if flip_back:
            q = tf.reverse(q, axis=[2])
        b, h, w, c = q.shape
        q = _heads(model, layer, tf.reshape(q, (b, h * w, c)))
        k = tf.stop_gradient(_heads(model, layer, tf.reshape(k, (b, h * w, c))))
        positive = tf.reduce_sum(q * k, axis=-1, keepdims=True)
        negatives = tf.where(tf.eye(h * w, dtype=tf.bool)[None], tf.constant(-10.0, q.dtype),
                             tf.einsum("bnc,bmc->bnm", q, k))
        logits = tf.concat([positive, negatives], axis=-1) / TAU
        labels = tf.zeros(logits.shape[:2], tf.int32)
        per_layer.append(tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)))
    return tf.add_n(per_layer) / len(per_layer)


def _cut_reference(model, x, y, kind: str, flipped: bool):
    """CUT: L_GAN + lambda_NCE 0.5 (PatchNCE(x, G(x)) + PatchNCE(y, G(y))), lambda_NCE 1.
    FastCUT: L_GAN + lambda_NCE PatchNCE(x, G(x)), lambda_NCE 10; with flip equivariance the
    input is flipped (when the step's coin says so) and the translation's features flipped back."""
    G, D = model.photo_to_monet, model.monet_critic
    encoder = keras.Model(G.inputs, [G.get_layer(n).output for n in NCE_LAYERS])
    with tf.GradientTape(persistent=True) as tape:
        fake = G(tf.reverse(x, axis=[2]) if flipped else x, training=True)
        g_gan, d = adversarial("lsgan", D(y, training=True), D(fake, training=True))
        nce = patch_nce(model, encoder, x, fake, flip_back=flipped)
        if kind == "cut":
            identity = patch_nce(model, encoder, y, G(y, training=True))
            total = g_gan + 1.0 * 0.5 * (nce + identity)
        else:
            identity = tf.constant(0.0, tf.float64)
            total = g_gan + 10.0 * nce
    reference = {"monet_gen_loss": g_gan, "nce_loss": nce, "identity_nce_loss": identity,
                 "gen_total_loss": total, "monet_critic_loss": d}
    return reference, _reference_grads(model, {"gen_total_loss": total,
                                                "critic_total_loss": d}, tape)


# FastCUT's flip is a coin from the step's shared RNG: seed 0 and seed 2 fall on either side,
# so both branches are compared (the test checks which branch each seed took).
@pytest.mark.parametrize("kind,seed,flipped", [("cut", 0, False), ("fastcut", 0, None),
                                               ("fastcut", 2, None)])
def test_cut_and_fastcut_against_park_et_al(kind, seed, flipped):
    with float64():
        model = build_model(_config(kind, seed=seed), steps_per_epoch=1,
                            global_batch_size=BATCH, jit_compile=False)
        assert model.nce_layers == NCE_LAYERS and model.num_patches == NCE_PATCHES
        x, y = _batch()
        candidates = [False] if kind == "cut" else [False, True]
        refs = {flip: _cut_reference(model, x, y, kind, flip) for flip in candidates}
        package, grads = _package_step(model, x, y)
    # Which way the coin fell: the branch whose PatchNCE the package logged.
    took = min(refs, key=lambda flip: abs(package["nce_loss"] - float(refs[flip][0]["nce_loss"])))
    if kind == "fastcut":
        assert abs(float(refs[True][0]["nce_loss"]) - float(refs[False][0]["nce_loss"])) > 1e-3
        assert took == {0: True, 2: False}[seed], "the seed's coin changed: pick seeds anew"
    reference, reference_grads = refs[took]
    _assert_same(package, reference, grads, reference_grads)


def test_dcgan_against_radford_et_al(monkeypatch):
    """min_G max_D log D(y) + log(1 - D(G(z))), with the non-saturating -log D(G(z)) for G
    (the critic's loss halved, as for every family), on fixed noise z."""
    rng = np.random.default_rng(3)
    z = tf.constant(rng.standard_normal((BATCH, 16)), tf.float64)
    real_normal = keras.random.normal

    def fixed_noise(shape, *args, **kwargs):
        if tuple(shape) == (BATCH, 16):
            return z
        return real_normal(shape, *args, **kwargs)

    with float64():
        model = build_model(_config("dcgan", "bce"), steps_per_epoch=1, global_batch_size=BATCH,
                            jit_compile=False)
        _, y = _batch()
        G, D = model.noise_to_monet, model.monet_critic
        with tf.GradientTape(persistent=True) as tape:
            g_gan, d = adversarial("bce", D(y, training=True), D(G(z, training=True), training=True))
        reference = {"monet_gen_loss": g_gan, "gen_total_loss": g_gan, "monet_critic_loss": d}
        reference_grads = _reference_grads(model, {"gen_total_loss": g_gan,
                                                   "critic_total_loss": d}, tape)
        monkeypatch.setattr(keras.random, "normal", fixed_noise)
        package, grads = _package_step(model, tf.zeros((BATCH, 1, 1, 3), tf.float64), y)
    _assert_same(package, reference, grads, reference_grads)
