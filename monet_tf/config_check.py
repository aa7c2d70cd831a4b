"""One check of a resolved config, before any data is read or model built, for every CLI.

Each field of `monet_tf.config.base_config()` has a rule in FIELDS (tests/test_config_check.py
fails for a field without one); COMBINATIONS hold what no single field can say (an image size the
generator cannot take, a CUT layer the generator does not have, mixed_float16 on JAX). A problem
is one line, `--config.<field>=<value>: why; what to do`, raised as ConfigError, which the CLIs
print as `error: ...` and exit 2. Imports no backend: the model vocabularies are read lazily.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Callable

import ml_collections

from monet_tf.config import (CRITICS, DIFFAUGMENT_POLICIES, GAN_LOSSES, GENERATORS,
                             INSTANCE_NORMS, KINDS, PRECISIONS, REFLECT_PADDINGS, UPSAMPLES, flag,
                             flatten, generator_multiple, resnet_blocks, unknown_field_message)

# Fields a run adds to its config.json (train.py); a resolved config may carry them.
RESOLVED = ("runtime", "train.replicas", "train.global_batch_size")


class ConfigError(ValueError):
    """A config value cannot work; the message is one line that names --config.<field>."""


# ---- durations ("4h30m", "90m", "600s", "600") ------------------------------------------------

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")
_BARE_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def duration_problem(text: str) -> str | None:
    """Why `text` is not a duration, or None. A bare number after a unit is refused: "4h30" could
    mean minutes or seconds."""
    text = str(text).strip().lower().replace(" ", "")
    if _BARE_NUMBER.fullmatch(text):
        return None if float(text) > 0 else "must be longer than zero"
    trailing = re.fullmatch(r"(.*[hm])(\d+(?:\.\d+)?)", text)
    if trailing and _DURATION.fullmatch(trailing.group(1)):
        unit = "m" if trailing.group(1).endswith("h") else "s"
        return (f"a number after a unit is ambiguous; did you mean "
                f"{trailing.group(1)}{trailing.group(2)}{unit}?")
    match = _DURATION.fullmatch(text)
    if not text or not match or not any(match.groups()):
        return "not a duration; use e.g. 4h30m, 90m, 600s or 600 (seconds)"
    if seconds_of(text) <= 0:
        return "must be longer than zero"
    return None


def seconds_of(text: str) -> float:
    """Seconds in a duration that duration_problem accepts."""
    text = str(text).strip().lower().replace(" ", "")
    if _BARE_NUMBER.fullmatch(text):
        return float(text)
    hours, minutes, seconds = (float(g or 0) for g in _DURATION.fullmatch(text).groups())
    return hours * 3600 + minutes * 60 + seconds


def parse_duration(text: str, field: str = "train.time_budget") -> float | None:
    """Seconds in "4h30m", "90m", "45s" or "600"; None for "" (no limit)."""
    if not str(text).strip():
        return None
    problem = duration_problem(text)
    if problem:
        raise ConfigError(f"{flag(field, text)}: {problem}")
    return seconds_of(text)


# ---- rules: each returns the problem ("why; what to do") or None ------------------------------

Rule = Callable[[Any], "str | None"]


def _number(value, integer: bool) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be {'an integer' if integer else 'a number'}, not {type(value).__name__}"
    if integer and value != int(value):
        return "must be a whole number"
    if value != value or value in (float("inf"), float("-inf")):
        return "must be finite"
    return None


def integer(low: int | None = None, high: int | None = None, why: str = "") -> Rule:
    def rule(value):
        return _number(value, True) or _range(value, low, high, False, why)
    return rule


def number(low: float | None = None, high: float | None = None, above: bool = False,
           below: bool = False, why: str = "") -> Rule:
    """above / below: the bound itself is excluded."""
    def rule(value):
        return (_number(value, False) or _range(value, low, None, above, why)
                or _range(value, None, high, below, why))
    return rule


def _range(value, low, high, strict, why) -> str | None:
    tail = f" ({why})" if why else ""
    if low is not None and (value < low or (strict and value == low)):
        return f"must be {'>' if strict else '>='} {low}{tail}"
    if high is not None and (value > high or (strict and value == high)):
        return f"must be {'<' if strict else '<='} {high}{tail}"
    return None


def boolean(value) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def text(value) -> str | None:
    return None if isinstance(value, str) else f"must be a string, not {type(value).__name__}"


def nonempty(value) -> str | None:
    return text(value) or (None if value.strip() else "must not be empty")


def choice(options: tuple[str, ...], what: str = "") -> Rule:
    def rule(value):
        if value in options:
            return None
        near = difflib.get_close_matches(str(value), options, n=1)
        hint = f"; did you mean {near[0]}?" if near else ""
        return f"is not one of {', '.join(options)}{what}{hint}"
    return rule


def flag_choice(value) -> str | None:
    """auto, or a boolean (true / false also as text)."""
    if isinstance(value, bool) or str(value).lower() in ("auto", "true", "false"):
        return None
    return "must be auto, true or false"


def comma_list(options: tuple[str, ...], empty_ok: bool) -> Rule:
    def rule(value):
        problem = text(value)
        if problem:
            return problem
        names = [n.strip() for n in value.split(",") if n.strip()]
        if not names and not empty_ok:
            return "must name at least one, e.g. " + ",".join(options[:3])
        unknown = [n for n in names if n not in options]
        if unknown:
            return f"{unknown[0]!r} is not one of {', '.join(options)}"
        return None
    return rule


def duration(empty_ok: bool) -> Rule:
    def rule(value):
        if text(value):
            return text(value)
        if not value.strip():
            return None if empty_ok else "must be a duration, e.g. 5h"
        return duration_problem(value)
    return rule


def _generator(value) -> str | None:
    if text(value):
        return text(value)
    if resnet_blocks(value) is not None:
        return None
    return choice(GENERATORS, " (or resnet_<n>blocks for n residual blocks)")(value)


def _topology(value) -> str | None:
    from monet_tf.runtime import tpus

    if text(value) or value == "" or value in tpus.TOPOLOGIES:
        return text(value)
    return choice(tuple(tpus.TOPOLOGIES))(value)


def _nce_layers(value) -> str | None:
    """ResNet encoder layers by name: padded_input, down_1, down_2, block_<n>."""
    problem = text(value)
    names = [] if problem else [n.strip() for n in value.split(",") if n.strip()]
    if not problem and not names:
        problem = "must name at least one layer, e.g. padded_input,down_1,down_2,block_1,block_5"
    for name in names:
        if name not in ("padded_input", "down_1", "down_2") and not re.fullmatch(
                r"block_[1-9][0-9]*", name):
            problem = (f"{name!r} is not a ResNet encoder layer: padded_input, down_1, down_2 "
                       "or block_<n>")
    return problem

_POSITIVE = integer(1)

FIELDS: dict[str, Rule] = {
    "seed": integer(0),
    "data.data_dir": text,
    "data.monet": text,
    "data.photo": text,
    "data.image_size": integer(32, why="the networks halve it several times"),
    "data.jitter": boolean,
    "data.jitter_scale": number(1.0, why="it upscales before the random crop"),
    "data.flip": boolean,
    "data.shuffle_buffer": _POSITIVE,
    "data.steps_per_epoch": integer(0, why="0: one pass over the training images"),
    "data.heldout_fraction": number(0.0, 1.0, below=True),
    "data.min_image_size": _POSITIVE,
    "data.skip_bad_records": boolean,
    "data.cache": boolean,
    "model.kind": choice(KINDS),
    "model.generator": _generator,
    "model.ngf": _POSITIVE,
    "model.upsample": choice(UPSAMPLES),
    "model.instance_norm": choice(INSTANCE_NORMS),
    "model.reflect_padding": choice(REFLECT_PADDINGS),
    "model.dropout": number(0.0, 1.0, below=True),
    "model.critic": choice(CRITICS),
    "model.ndf": _POSITIVE,
    "model.critic_layers": _POSITIVE,
    "model.critic_noise": number(0.0),
    "model.spectral_norm": boolean,
    "model.norm_epsilon": number(0.0, above=True),
    "model.latent_dim": _POSITIVE,
    "model.dcgan_width": _POSITIVE,
    "loss.gan": choice(GAN_LOSSES),
    "loss.cycle_weight": number(0.0),
    "loss.identity_weight": number(0.0),
    "loss.pool_size": integer(0, why="0: no image pool"),
    "loss.diffaugment": comma_list(DIFFAUGMENT_POLICIES, empty_ok=True),
    "loss.gan_weight": number(0.0),
    "loss.nce_weight": number(0.0, why="0: the kind's own, cut 1 and fastcut 10"),
    "loss.nce_identity": flag_choice,
    "loss.nce_flip_equivariance": flag_choice,
    "loss.nce_layers": _nce_layers,
    "loss.nce_patches": _POSITIVE,
    "loss.nce_units": _POSITIVE,
    "loss.nce_temperature": number(0.0, above=True),
    "optim.lr": number(0.0, above=True, why="the CycleGAN paper's is 2e-4"),
    "optim.beta_1": number(0.0, 1.0, below=True),
    "optim.beta_2": number(0.0, 1.0, below=True),
    "optim.epsilon": number(0.0, above=True),
    "train.batch_size": integer(1, why="per replica"),
    "train.epochs": integer(0),
    "train.decay_epochs": integer(0),
    "train.steps": integer(0, why="0: count epochs instead"),
    "train.decay_fraction": number(0.0, 1.0),
    "train.steps_per_execution": _POSITIVE,
    "train.jit_compile": flag_choice,
    "train.mixed_precision": choice(PRECISIONS),
    "train.checkpoint_every": _POSITIVE,
    "train.time_budget": duration(empty_ok=True),
    "train.keep_checkpoints": _POSITIVE,
    "train.sample_every": integer(0, why="0: no sample grids"),
    "train.num_samples": _POSITIVE,
    "train.deterministic": boolean,
    "train.demo_images": _POSITIVE,
    "eval.every": integer(0, why="0: no scores"),
    "eval.num_images": integer(2, why="a covariance needs two"),
    "eval.batch_size": _POSITIVE,
    "eval.inception_weights": text,
    "submission.path": text,
    "submission.batch_size": _POSITIVE,
    "submission.allow_any_count": boolean,
    "submission.count": _POSITIVE,
    "estimate.devices": _POSITIVE,
    "estimate.accelerator": _topology,
    "estimate.flops_per_pair": number(0.0),
    "estimate.peak_fraction": number(0.0, 1.0, above=True),
    "estimate.pairs_per_second": number(0.0),
    "estimate.images_per_second": number(0.0),
    "estimate.photos": _POSITIVE,
    "estimate.limit": duration(empty_ok=False),
    "wandb.enabled": boolean,
    "wandb.project": nonempty,
    "wandb.entity": text,
    "wandb.run_name": text,
}


# ---- combinations: (field, problem) or None ---------------------------------------------------

def _image_size_for_generator(cfg, backend):
    kind, size = cfg.model.kind, int(cfg.data.image_size)
    if kind == "dcgan":
        if size & (size - 1):
            return "data.image_size", ("model.kind=dcgan doubles a 4x4 start, so the size must "
                                       "be a power of two (e.g. 64, 128, 256)")
        return None
    multiple = generator_multiple(cfg.model.generator)
    if cfg.model.generator.startswith("unet") and size != multiple:
        return "data.image_size", (f"{cfg.model.generator} takes {multiple}x{multiple} images "
                                   f"only; set data.image_size={multiple} or use a ResNet")
    if size % multiple:
        return "data.image_size", (f"{cfg.model.generator} needs a multiple of {multiple}; "
                                   f"e.g. {size // multiple * multiple or multiple}")
    return None


def _unet_upsamples_by_transpose(cfg, backend):
    if cfg.model.generator.startswith("unet") and cfg.model.upsample != "transpose":
        return "model.upsample", (f"{cfg.model.generator} upsamples with transposed "
                                  "convolutions only; set model.upsample=transpose or use a ResNet")
    return None


def _critic_sees_the_image(cfg, backend):
    layers, size = int(cfg.model.critic_layers), int(cfg.data.image_size)
    if size // 2 ** layers - 2 < 1:
        return "model.critic_layers", (f"{layers} stride-2 layers leave no patch of a {size} px "
                                       f"image; use at most "
                                       f"{max(1, (size // 3).bit_length() - 1)} or larger images")
    return None


def _cut_reads_a_resnet(cfg, backend):
    if cfg.model.kind not in ("cut", "fastcut"):
        return None
    generator = str(cfg.model.generator)
    blocks = re.fullmatch(r"resnet_([0-9]+)blocks", generator)
    if not blocks:
        return "model.generator", (f"model.kind={cfg.model.kind} reads a ResNet's encoder "
                                   "layers (PatchNCE); use resnet_9blocks")
    deeper = [n for n in str(cfg.loss.nce_layers).split(",")
              if n.strip().startswith("block_") and int(n.strip()[6:]) > int(blocks.group(1))]
    if deeper:
        return "loss.nce_layers", (f"{generator} has no {deeper[0].strip()}; name layers up to "
                                   f"block_{blocks.group(1)}")
    return None


def _schedule_has_steps(cfg, backend):
    if int(cfg.train.steps) == 0 and int(cfg.train.epochs) + int(cfg.train.decay_epochs) == 0:
        return "train.epochs", "and train.decay_epochs are both 0; train at least one epoch"
    return None


def _loss_scaling_needs_tensorflow(cfg, backend):
    if backend == "jax" and cfg.train.mixed_precision == "mixed_float16":
        return "train.mixed_precision", ("needs loss scaling, which monet_tf does on the "
                                         "TensorFlow backend only; on JAX use mixed_bfloat16 or "
                                         "float32")
    return None


def _dcgan_width(cfg, backend):
    if cfg.model.kind == "dcgan" and int(cfg.model.dcgan_width) < int(cfg.model.ngf):
        return "model.dcgan_width", (f"is below model.ngf={cfg.model.ngf}, the width it halves "
                                     "down to; raise it")
    return None


def _submission_count(cfg, backend):
    count = int(cfg.submission.count)
    if cfg.model.kind == "dcgan" and cfg.submission.path and not cfg.submission.allow_any_count \
            and not 7000 <= count <= 10000:
        return "submission.count", ("Kaggle takes 7000 to 10000 images; set one in that range "
                                    "or submission.allow_any_count=true")
    return None


COMBINATIONS = (_cut_reads_a_resnet, _image_size_for_generator, _unet_upsamples_by_transpose,
                _critic_sees_the_image, _schedule_has_steps, _loss_scaling_needs_tensorflow, _dcgan_width,
                _submission_count)


# ---- the check ---------------------------------------------------------------------------------

def check(cfg: ml_collections.ConfigDict, backend: str | None = None) -> None:
    """Raises ConfigError for the first field (or combination) that cannot work. backend: the
    Keras backend the run uses, for the checks that depend on it (None: skip those)."""
    values = dict(flatten(cfg.to_dict()))
    for field, value in values.items():
        if field in FIELDS:
            problem = FIELDS[field](value)
            if problem:
                raise ConfigError(f"{flag(field, value)}: {problem}")
        elif not any(field == r or field.startswith(r + ".") for r in RESOLVED):
            raise ConfigError(unknown_field_message(field, value))
    for combination in COMBINATIONS:
        found = combination(cfg, backend)
        if found:
            field, problem = found
            raise ConfigError(f"{flag(field, values[field])}: {problem}")


def check_global_batch(cfg: ml_collections.ConfigDict, replicas: int, images: int,
                       domain: str) -> None:
    """An epoch is one pass over the training images (data.steps_per_epoch 0): the global batch
    must fit in them."""
    batch = int(cfg.train.batch_size)
    if int(cfg.data.steps_per_epoch) == 0 and batch * replicas > images:
        raise ConfigError(
            f"{flag('train.batch_size', batch)}: the global batch ({batch} x {replicas} "
            f"replicas) is larger than the {images} training {domain}, so no epoch is one pass; "
            "lower it or set data.steps_per_epoch")
