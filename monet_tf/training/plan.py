"""What a config's full run would cost on the hardware it assumes (`cfg.estimate`), and the
config of a dry run that builds the same models and runs a few steps on the bundled sample.

The figures are arithmetic, printed so that a user sees before a 5-hour notebook whether the run
fits: steps x global batch / pairs per second, photos / images per second. On a TPU the pairs per
second are a stated fraction of the slice's peak over XLA:TPU's own FLOP count of the step.
"""

from __future__ import annotations

import math
import resource
import sys

import ml_collections

from monet_tf.runtime import tpus
from monet_tf.models import total_steps
from monet_tf.training.job import format_duration

DRY_RUN_STEPS = 3
PAINTINGS = 300  # The competition's monet_tfrec: an epoch of a family that trains on them alone.


def _generates(cfg: ml_collections.ConfigDict) -> bool:
    """A family that paints from noise (dcgan): its epoch and its submission have no photos."""
    from monet_tf.models.families import translates_photos

    return not translates_photos(cfg.model.get("kind", "cyclegan"))


def _accelerator(cfg: ml_collections.ConfigDict) -> tpus.Topology | None:
    name = cfg.estimate.get("accelerator", "")
    return tpus.topology(name) if name else None


def throughput(cfg: ml_collections.ConfigDict,
               flops_per_pair: float | None = None) -> tuple[float, str]:
    """(pairs/s, how it was reached): for a TPU slice, estimate.peak_fraction of its bfloat16
    peak over XLA:TPU's FLOPs per pair (flops_per_pair, compiled now, else the config's
    estimate.flops_per_pair); else estimate.pairs_per_second; (0, "") when neither is known."""
    est = cfg.estimate
    accelerator = _accelerator(cfg)
    flops = flops_per_pair or est.get("flops_per_pair", 0.0)
    if accelerator is not None and flops > 0:
        fraction = est.get("peak_fraction", 0.3)
        rate = fraction * accelerator.peak_flops / flops
        source = "compiled now" if flops_per_pair else "bench/tpu_sizing.py"
        return rate, (f"{rate:,.0f} pairs/s: {fraction:.0%} of the {accelerator.name}'s "
                      f"{accelerator.peak_flops / 1e12:,.0f} bf16 TFLOP/s over XLA:TPU's "
                      f"{flops / 1e12:.2f} TFLOP per pair ({source})")
    if est.pairs_per_second > 0:
        return est.pairs_per_second, f"an assumed {est.pairs_per_second:g} pairs/s"
    return 0.0, ""


def full_run(cfg: ml_collections.ConfigDict, devices: int | None = None,
             flops_per_pair: float | None = None) -> dict:
    """Steps, batch and time of the config's run on `devices` (default: the chips of
    estimate.accelerator, else estimate.devices)."""
    est = cfg.estimate
    accelerator = _accelerator(cfg)
    devices = devices or (accelerator.devices if accelerator is not None else est.devices)
    global_batch = cfg.train.batch_size * devices
    images = PAINTINGS if _generates(cfg) else est.photos
    steps_per_epoch = cfg.data.steps_per_epoch or max(1, images // global_batch)
    steps = total_steps(cfg, steps_per_epoch)
    plan = {"devices": devices, "global_batch": global_batch,
            "steps_per_epoch": steps_per_epoch, "steps": steps,
            "epochs": steps / steps_per_epoch, "pairs": steps * global_batch}
    rate, how = throughput(cfg, flops_per_pair)
    if rate > 0:
        plan["train_seconds"] = plan["pairs"] / rate
        plan["throughput"] = how
    if est.images_per_second > 0:
        outputs = cfg.submission.count if _generates(cfg) else est.photos
        plan["translate_seconds"] = outputs / est.images_per_second
    return plan


def describe(cfg: ml_collections.ConfigDict, compiled: list | None = None) -> str:
    """The full run's plan; `compiled`: monet_tf.training.tpu_compile's ProgramReports for the
    config (its FLOPs replace the config's, and its compile times join the plan)."""
    reports = {r.program: r for r in compiled or ()}
    step = reports.get("train_step")
    plan = full_run(cfg, devices=None, flops_per_pair=step.flops_per_item if step else None)
    est = cfg.estimate
    lines = [f"full run: {plan['steps']:,} steps ({plan['epochs']:.1f} epochs of "
             f"{plan['steps_per_epoch']} steps) at a global batch of {plan['global_batch']} "
             f"({cfg.train.batch_size} x {plan['devices']} devices) = {plan['pairs']:,} pairs"]
    if "train_seconds" in plan:
        lines.append(f"  training at {plan['throughput']}: "
                     f"{format_duration(plan['train_seconds'])} (time_budget "
                     f"{cfg.train.time_budget or 'none'})")
    else:
        lines.append("  training time: unknown (set estimate.accelerator and flops_per_pair, or "
                     "estimate.pairs_per_second)")
    if reports:
        topology = next(iter(reports.values())).topology
        lines.append(f"  compiling for {topology} (XLA:TPU, timed on this machine's CPU): "
                     + ", ".join(f"{r.program} {format_duration(r.compile_seconds)}"
                                 for r in reports.values()))
    if "translate_seconds" in plan:
        what = (f"generating {cfg.submission.count:,} paintings" if _generates(cfg)
                else f"translating {est.photos:,} photos")
        lines.append(f"  {what} at an assumed {est.images_per_second:g} images/s: "
                     f"{format_duration(plan['translate_seconds'])}")
    lines.append(f"  limit for the whole job: {est.limit}")
    lines.extend(f"  {r.describe()}" for r in reports.values())
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


def reduced_for_cpu(dry: ml_collections.ConfigDict) -> tuple[ml_collections.ConfigDict, str]:
    """A dry run's config, small enough for XLA:CPU, and what was reduced. The same family,
    networks, losses, augmentation and precision at 64 px (more where the generator or a deep
    critic needs it), widths at most 16, batch 1, one step per call: XLA:CPU compiles the
    full-size JAX step for tens of minutes at 16 GB, and the full size is what the XLA:TPU
    compile proves (--compile_for)."""
    from monet_tf.config import generator_multiple

    small = ml_collections.ConfigDict(dry.to_dict())
    m = small.model
    translator = m.get("kind", "cyclegan") != "dcgan"
    size = max(64, 4 * 2 ** int(m.critic_layers),
               generator_multiple(m.generator) if translator else 0)
    small.data.image_size = min(int(dry.data.image_size), size)
    m.ngf, m.ndf = min(m.ngf, 16), min(m.ndf, 16)
    m.dcgan_width = min(m.dcgan_width, 64)
    small.loss.nce_units = min(small.loss.nce_units, 64)
    small.loss.nce_patches = min(small.loss.nce_patches, 64)
    small.train.batch_size = 1
    small.train.steps_per_execution = 1
    what = (f"{small.data.image_size} px, ngf {m.ngf}, ndf {m.ndf}, batch 1 per device, one step "
            "per call")
    return small, what
