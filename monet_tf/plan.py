"""What a config's full run would cost on the hardware it assumes (`cfg.estimate`), and the
config of a dry run that builds the same models and runs a few steps on the bundled sample.

The figures are arithmetic on assumptions, printed so that a user sees before a 5-hour notebook
whether the run fits: steps x global batch / pairs per second, photos / images per second.
"""

from __future__ import annotations

import math
import resource
import sys

import ml_collections

from monet_tf.models import total_steps
from monet_tf.train import format_duration

DRY_RUN_STEPS = 3
PAINTINGS = 300  # The competition's monet_tfrec: an epoch of a family that trains on them alone.


def _generates(cfg: ml_collections.ConfigDict) -> bool:
    """A family that paints from noise (dcgan): its epoch and its submission have no photos."""
    from monet_tf.models.families import translates_photos

    return not translates_photos(cfg.model.get("kind", "cyclegan"))


def full_run(cfg: ml_collections.ConfigDict) -> dict:
    """Steps, batch and time of the config's run on `estimate.devices` devices."""
    est = cfg.estimate
    global_batch = cfg.train.batch_size * est.devices
    images = PAINTINGS if _generates(cfg) else est.photos
    steps_per_epoch = cfg.data.steps_per_epoch or max(1, images // global_batch)
    steps = total_steps(cfg, steps_per_epoch)
    plan = {"devices": est.devices, "global_batch": global_batch,
            "steps_per_epoch": steps_per_epoch, "steps": steps,
            "epochs": steps / steps_per_epoch, "pairs": steps * global_batch}
    if est.pairs_per_second > 0:
        plan["train_seconds"] = plan["pairs"] / est.pairs_per_second
    if est.images_per_second > 0:
        outputs = cfg.submission.count if _generates(cfg) else est.photos
        plan["translate_seconds"] = outputs / est.images_per_second
    return plan


def describe(cfg: ml_collections.ConfigDict) -> str:
    plan = full_run(cfg)
    est = cfg.estimate
    lines = [f"full run: {plan['steps']:,} steps ({plan['epochs']:.1f} epochs of "
             f"{plan['steps_per_epoch']} steps) at a global batch of {plan['global_batch']} "
             f"({cfg.train.batch_size} x {plan['devices']} devices) = {plan['pairs']:,} pairs"]
    if "train_seconds" in plan:
        lines.append(f"  training at an assumed {est.pairs_per_second:g} pairs/s: "
                     f"{format_duration(plan['train_seconds'])} (time_budget "
                     f"{cfg.train.time_budget or 'none'})")
    else:
        lines.append("  training time: unknown (estimate.pairs_per_second is not set)")
    if "translate_seconds" in plan:
        what = (f"generating {cfg.submission.count:,} paintings" if _generates(cfg)
                else f"translating {est.photos:,} photos")
        lines.append(f"  {what} at an assumed {est.images_per_second:g} images/s: "
                     f"{format_duration(plan['translate_seconds'])}")
    lines.append(f"  limit for the whole job: {est.limit}")
    return "\n".join(lines)


def memory(model, cfg: ml_collections.ConfigDict) -> str:
    """Per-device state of a data-parallel run (weights, Adam's two slots, the image pools), and
    this process's peak host memory."""
    params = sum(math.prod(v.shape) for v in model.trainable_variables)
    pools = sum(math.prod(v.shape) for v in model.non_trainable_variables) * 4  # + RNG state
    state = params * 4 * 3 + pools
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_bytes = peak if sys.platform == "darwin" else peak * 1024
    return (f"memory: {params / 1e6:.1f}M parameters; weights + Adam slots + pools "
            f"{state / 2**30:.2f} GiB per device (activations come on top: batch "
            f"{cfg.train.batch_size} per device); this process peaked at "
            f"{peak_bytes / 2**30:.1f} GiB of host memory")


def dry_run_config(cfg: ml_collections.ConfigDict, sample_dir: str,
                   submission: str) -> ml_collections.ConfigDict:
    """The same models and settings for DRY_RUN_STEPS steps on the sample, no scores or wandb,
    and a zip of the sample's translated photos at `submission` (any count)."""
    dry = ml_collections.ConfigDict(cfg.to_dict())
    dry.data.data_dir, dry.data.monet, dry.data.photo = sample_dir, "", ""
    dry.data.steps_per_epoch = DRY_RUN_STEPS
    dry.data.heldout_fraction = 0.1
    dry.train.steps = DRY_RUN_STEPS
    dry.train.time_budget = ""
    dry.train.num_samples = 2
    dry.train.demo_images = 2
    dry.eval.every = 0
    dry.wandb.enabled = False
    dry.submission.path = submission
    dry.submission.allow_any_count = True
    dry.submission.batch_size = min(cfg.submission.batch_size, 4)
    dry.submission.count = min(cfg.submission.count, 8)  # A dcgan's paintings from noise.
    return dry
