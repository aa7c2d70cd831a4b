"""Checkpoints that resume exactly, and the resolved config saved beside them.

A checkpoint holds everything the next step depends on: the four networks, the four optimizers
(their step counts drive the learning-rate schedule), the image pools and the step's random state.
Those all hang off the CycleGAN model, so one `tf.train.Checkpoint(model=...)` object graph covers
them; the generators are also named at the top level so that `monet_tf.export` can restore them
alone, without building critics or optimizers.
"""

from __future__ import annotations

import json
import os

import ml_collections
import tensorflow as tf

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"

# Settings a checkpoint's shapes or step count depend on: resuming with other values is refused.
RESUME_KEYS = (
    "model.generator", "model.ngf", "model.upsample", "model.critic", "model.ndf",
    "model.critic_layers", "model.spectral_norm", "data.image_size", "data.steps_per_epoch",
    "loss.pool_size",
)


class WorkdirError(RuntimeError):
    """The workdir cannot be used: not writable, or holds a run with incompatible settings."""


def check_workdir(workdir: str) -> None:
    """Fails fast, before any data is read, when the workdir cannot be created or written."""
    probe = os.path.join(workdir, ".write_test")
    try:
        tf.io.gfile.makedirs(workdir)
        with tf.io.gfile.GFile(probe, "w") as f:
            f.write("ok")
        tf.io.gfile.remove(probe)
    except (tf.errors.OpError, OSError) as e:
        raise WorkdirError(f"--workdir={workdir} cannot be written: {e}") from None


def training_checkpoint(model) -> tf.train.Checkpoint:
    return tf.train.Checkpoint(
        model=model,
        photo_to_monet=model.photo_to_monet,
        monet_to_photo=model.monet_to_photo,
    )


def generators_checkpoint(photo_to_monet, monet_to_photo) -> tf.train.Checkpoint:
    """The part of `training_checkpoint` that inference needs."""
    return tf.train.Checkpoint(photo_to_monet=photo_to_monet, monet_to_photo=monet_to_photo)


def checkpoint_manager(checkpoint: tf.train.Checkpoint, workdir: str,
                       keep: int) -> tf.train.CheckpointManager:
    # TF writes each checkpoint to temporary files and renames them, and updates the `checkpoint`
    # index only after the data is complete: a kill mid-write leaves the previous one as latest.
    return tf.train.CheckpointManager(
        checkpoint, os.path.join(workdir, CHECKPOINT_DIR), max_to_keep=keep
    )


def latest_checkpoint(workdir: str) -> str | None:
    return tf.train.latest_checkpoint(os.path.join(workdir, CHECKPOINT_DIR))


def save_config(cfg: ml_collections.ConfigDict, workdir: str) -> None:
    path = os.path.join(workdir, CONFIG_FILE)
    tmp = path + ".tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(cfg.to_json_best_effort(indent=2, sort_keys=True))
    tf.io.gfile.rename(tmp, path, overwrite=True)


def load_config(workdir: str) -> ml_collections.ConfigDict:
    path = os.path.join(workdir, CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        raise WorkdirError(f"{path} not found: --workdir must be a monet_tf training directory")
    with tf.io.gfile.GFile(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def _lookup(cfg: ml_collections.ConfigDict, dotted: str):
    value = cfg
    for part in dotted.split("."):
        value = value.get(part) if hasattr(value, "get") else None
    return value


def check_resumable(saved: ml_collections.ConfigDict, cfg: ml_collections.ConfigDict,
                    workdir: str) -> None:
    """Refuses to resume a run whose checkpoints were made with incompatible settings."""
    diffs = [
        f"{key}: checkpoint has {_lookup(saved, key)!r}, this run asks for {_lookup(cfg, key)!r}"
        for key in RESUME_KEYS
        if _lookup(saved, key) != _lookup(cfg, key)
    ]
    if diffs:
        raise WorkdirError(
            f"--workdir={workdir} holds checkpoints of a run with other settings; use a new "
            "workdir or the same settings:\n  " + "\n  ".join(diffs)
        )


def restore_generators(workdir: str, checkpoint_path: str | None = None):
    """Builds both generators from the saved config and restores them from a checkpoint.

    Returns (photo_to_monet, monet_to_photo, config). Critics and optimizers are not built.
    """
    from monet_tf.models import build_generator

    cfg = load_config(workdir)
    path = checkpoint_path or latest_checkpoint(workdir)
    if path is None:
        raise WorkdirError(f"no checkpoint in {os.path.join(workdir, CHECKPOINT_DIR)}")
    if not tf.io.gfile.exists(path + ".index"):
        raise WorkdirError(f"--checkpoint={path}: no such checkpoint ({path}.index is missing)")
    generators = [
        build_generator(cfg.model.generator, ngf=cfg.model.ngf, upsample=cfg.model.upsample,
                        dropout=cfg.model.dropout, norm_epsilon=cfg.model.norm_epsilon,
                        image_size=cfg.data.image_size, model_name=name)
        for name in ("photo_to_monet", "monet_to_photo")
    ]
    status = generators_checkpoint(*generators).restore(path)
    status.expect_partial().assert_existing_objects_matched()
    return generators[0], generators[1], cfg
