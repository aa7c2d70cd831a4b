"""The model families by name (cfg.model.kind), as pytorch-CycleGAN's --model picks one.

- cyclegan: two generators and two critics, cycle + identity L1 (Zhu et al., 2017);
- cut / fastcut: one generator and one critic, PatchNCE on the generator's encoder (Park et
  al., 2020); FastCUT is CUT without the identity NCE, at lambda_NCE 10 with flip equivariance;
- dcgan: noise -> painting, trained on the paintings alone (Radford et al., 2016), the baseline
  that "generate from noise" notebooks start from.
"""

from __future__ import annotations

from monet_tf.config import KINDS


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"model.kind={kind!r} is unknown; choose one of {', '.join(KINDS)}")
    return kind


def model_class(kind: str):
    """The GANModel subclass of a kind (its NETWORKS, GENERATORS and METRICS)."""
    check_kind(kind)
    if kind == "cyclegan":
        from monet_tf.models.cyclegan import CycleGAN

        return CycleGAN
    if kind in ("cut", "fastcut"):
        from monet_tf.models.cut import CUT

        return CUT
    from monet_tf.models.dcgan import DCGAN

    return DCGAN


def translates_photos(kind: str) -> bool:
    """Whether the family has a photo_to_monet (every kind but dcgan)."""
    return "photo_to_monet" in model_class(kind).GENERATORS


def build_model(cfg, steps_per_epoch: int, global_batch_size: int,
                jit_compile: bool | None = None, replicas: int | None = None):
    """cfg.model.kind's networks and optimizers, compiled and built (see build_cyclegan)."""
    kind = check_kind(cfg.model.get("kind", "cyclegan"))
    if kind == "cyclegan":
        from monet_tf.models.cyclegan import build_cyclegan

        return build_cyclegan(cfg, steps_per_epoch, global_batch_size, jit_compile, replicas)
    if kind in ("cut", "fastcut"):
        from monet_tf.models.cut import build_cut

        return build_cut(cfg, steps_per_epoch, global_batch_size, jit_compile, replicas)
    from monet_tf.models.dcgan import build_dcgan

    return build_dcgan(cfg, steps_per_epoch, global_batch_size, jit_compile, replicas)


def build_generators(cfg) -> dict:
    """The kind's exported generators, freshly built (to restore weights into)."""
    kind = check_kind(cfg.model.get("kind", "cyclegan"))
    if kind == "dcgan":
        from monet_tf.models.dcgan import build_noise_generator

        return {"noise_to_monet": build_noise_generator(cfg, "noise_to_monet", seed=None)}
    from monet_tf.models.gan import translator

    return {name: translator(cfg, name, seed=None) for name in model_class(kind).GENERATORS}
