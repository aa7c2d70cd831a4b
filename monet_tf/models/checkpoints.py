"""Checkpoints that resume exactly, and the resolved config saved beside them.

A checkpoint holds everything the next step depends on: the model family's networks (for CUT
the projection heads too), one optimizer each (their step counts drive the learning-rate
schedule), the image pools and the step's random state.

TensorFlow runs write `tf.train.Checkpoint`s (`checkpoints/ckpt-N.index` + data): the state hangs
off the model, so one object graph covers it; the exported generators are also named at the top
level so that `monet_tf.inference.export` can restore them alone.

JAX runs write a folder per checkpoint, `checkpoints/ckpt-N/`: each network as a Keras
`.weights.h5` (Keras' backend-neutral format, so TensorFlow reads the generators of a JAX run for
export), the optimizer slots, pools and RNG in `state.npz`, and a `COMPLETE` marker written last,
so a folder cut short by a kill is never taken for a checkpoint.

A checkpoint that cannot be read (a data file cut short or missing, a damaged state.npz or
.weights.h5) is skipped with a warning naming it and why, and the newest readable one before it
is restored (`restore_newest`); a run whose checkpoints are all unreadable stops with one line.
A save that finds the disk full removes what it had written (`ckpt-9_temp/`, a folder without its
COMPLETE) and raises monet_tf.runtime.disk.DiskFull: the checkpoints before it are untouched.

In a run of several processes, process 0 (the chief) writes, and every process restores from the
workdir they share. On TensorFlow the others still save, as MultiWorkerMirroredStrategy needs
every worker to take part, into a scratch folder that is thrown away (TensorFlow's own pattern).
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
import zipfile
from typing import Callable

import keras
import ml_collections
import numpy as np
import tensorflow as tf

from monet_tf.runtime import disk

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"

# Settings a checkpoint's shapes or step count depend on: resuming with other values is refused.
RESUME_KEYS = (
    "model.kind", "model.generator", "model.ngf", "model.upsample", "model.critic", "model.ndf",
    "model.critic_layers", "model.spectral_norm", "data.image_size", "data.steps_per_epoch",
    "loss.pool_size", "loss.nce_layers", "loss.nce_units", "model.latent_dim", "model.dcgan_width",
)


class WorkdirError(RuntimeError):
    """The workdir cannot be used: not writable, or holds a run with incompatible settings."""


def check_workdir(workdir: str, process: int = 0) -> None:
    """Fails fast, before any data is read, when the workdir cannot be created or written (each
    process probes with its own file, also beside another run that the workdir lock will stop)."""
    probe = os.path.join(workdir, f".write_test{process or ''}.{os.getpid()}")
    try:
        tf.io.gfile.makedirs(workdir)
        with tf.io.gfile.GFile(probe, "w") as f:
            f.write("ok")
        tf.io.gfile.remove(probe)
    except (tf.errors.OpError, OSError) as e:
        raise WorkdirError(f"--workdir={workdir} cannot be written: {e}") from None


COMPLETE = "COMPLETE"
_FOLDER = re.compile(r"ckpt-(\d+)$")


def training_checkpoint(model) -> tf.train.Checkpoint:
    return tf.train.Checkpoint(model=model, **{name: getattr(model, name)
                                               for name in model.GENERATORS})


def generators_checkpoint(generators: dict) -> tf.train.Checkpoint:
    """The part of `training_checkpoint` that inference needs."""
    return tf.train.Checkpoint(**generators)


def checkpoint_manager(checkpoint: tf.train.Checkpoint, workdir: str,
                       keep: int) -> tf.train.CheckpointManager:
    # TF writes each checkpoint to temporary files and renames them, and updates the `checkpoint`
    # index only after the data is complete: a kill mid-write leaves the previous one as latest.
    return tf.train.CheckpointManager(
        checkpoint, os.path.join(workdir, CHECKPOINT_DIR), max_to_keep=keep
    )


def latest_checkpoint(workdir: str) -> str | None:
    """The newest checkpoint of either format: a TF prefix or a JAX run's folder."""
    root = os.path.join(workdir, CHECKPOINT_DIR)
    return tf.train.latest_checkpoint(root) or _latest_folder(root)


def is_folder_checkpoint(path: str) -> bool:
    return tf.io.gfile.exists(os.path.join(path, COMPLETE))


def _folders(root: str) -> list[tuple[int, str]]:
    """Complete checkpoint folders under root, oldest first."""
    if not tf.io.gfile.isdir(root):
        return []
    found = []
    for name in tf.io.gfile.listdir(root):
        match = _FOLDER.match(name.rstrip("/"))
        path = os.path.join(root, name.rstrip("/"))
        if match and is_folder_checkpoint(path):
            found.append((int(match.group(1)), path))
    return sorted(found)


def _latest_folder(root: str) -> str | None:
    folders = _folders(root)
    return folders[-1][1] if folders else None


def checkpoint_bytes(model) -> int:
    """What a checkpoint of `model` holds: every variable once (networks, optimizers, state)."""
    variables = {id(v): v for name in model.NETWORKS for v in getattr(model, name).weights}
    for group in _state_variables(model).values():
        variables.update((id(v), v) for v in group)
    return sum(np.asarray(v.numpy()).nbytes for v in variables.values())


def _reason(err: BaseException) -> str:
    """An error reading a checkpoint, in a few words: its type and first line."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    text = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", text)
    return f"{type(err).__name__}: {text[:200]}" if text else type(err).__name__


class _Checkpoints:
    """What both formats share: the newest readable checkpoint restored, and `latest`, the one
    the model is at (restored or saved last) once there is one."""

    # What reading a damaged checkpoint raises: TensorFlow's reader (OpError, and IndexError
    # for a data file cut short), h5py (OSError), numpy's npz (BadZipFile, ValueError, EOFError,
    # KeyError), a missing file (WorkdirError), a graph that matches nothing (AssertionError).
    UNREADABLE = (tf.errors.OpError, OSError, IndexError, KeyError, ValueError, EOFError,
                  zipfile.BadZipFile, AssertionError, WorkdirError)
    _current: str | None = None

    def candidates(self) -> list[str]:
        """The checkpoints on disk, newest first."""
        raise NotImplementedError

    def restore(self, path: str) -> None:
        raise NotImplementedError

    @property
    def latest(self) -> str | None:
        if self._current:
            return self._current
        found = self.candidates()
        return found[0] if found else None

    def restore_newest(self, warn: Callable[[str], None]) -> str | None:
        """Restores the newest checkpoint that can be read (a damaged one leaves the model half
        assigned; the next restore assigns every variable). None when there is none; raises
        WorkdirError when none can be read."""
        skipped = []
        for path in self.candidates():
            try:
                self.restore(path)
            except self.UNREADABLE as err:
                skipped.append((path, _reason(err)))
                continue
            for bad, why in skipped:
                warn(f"checkpoint {bad} cannot be read ({why}): skipped; resuming from {path}, "
                     "the newest one that can")
            self._current = path
            return path
        if skipped:
            raise WorkdirError(
                f"no checkpoint in {os.path.dirname(skipped[0][0])} can be read: "
                f"{'; '.join(f'{bad} ({why})' for bad, why in skipped)}. Restore them from a "
                "copy, or move that folder away to start the run afresh")
        return None


class TensorFlowCheckpoints(_Checkpoints):
    """tf.train.Checkpoint + CheckpointManager behind the interface train() uses."""

    def __init__(self, model, workdir: str, keep: int, chief: bool = True):
        self.model = model
        self.checkpoint = training_checkpoint(model)
        self.manager = checkpoint_manager(self.checkpoint, workdir, keep)
        self.chief = chief

    def candidates(self) -> list[str]:
        listed = list(reversed(self.manager.checkpoints))
        latest = self.manager.latest_checkpoint
        return listed if not latest or latest in listed else [latest, *listed]

    def restore(self, path: str) -> None:
        if is_folder_checkpoint(path):
            raise WorkdirError(f"{path} was written by a JAX run: resume it with --backend=jax")
        self.checkpoint.restore(path).assert_existing_objects_matched()

    def save(self, step: int) -> str:
        """The checkpoint's path (process 0's, on the other processes)."""
        if self.chief:
            prefix = os.path.join(self.manager.directory, f"ckpt-{step}")
            known = prefix in self.manager.checkpoints

            def remove_partial() -> None:
                # TensorFlow writes ckpt-N_temp/, then ckpt-N.*, then the `checkpoint` index
                # (through checkpoint.tmp*): none of them is a checkpoint until that last step.
                patterns = [f"{prefix}_temp*", os.path.join(self.manager.directory,
                                                             "checkpoint.tmp*")]
                for leftover in tf.io.gfile.glob(patterns + ([] if known else [f"{prefix}.*"])):
                    (tf.io.gfile.rmtree if tf.io.gfile.isdir(leftover) else tf.io.gfile.remove)(
                        leftover)

            with disk.writing(prefix, lambda: checkpoint_bytes(self.model), "the checkpoint",
                              cleanup=remove_partial):
                self._current = self.manager.save(checkpoint_number=step)
            return self._current
        with tempfile.TemporaryDirectory(prefix="monet_tf_checkpoint_") as scratch:
            tf.train.CheckpointManager(self.checkpoint, scratch, max_to_keep=1).save(
                checkpoint_number=step)
        self._current = os.path.join(self.manager.directory, f"ckpt-{step}")
        return self._current


def _write_weights(network: keras.Model, path: str) -> None:
    """network.save_weights to any tf.io.gfile path (h5py writes local files only)."""
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, os.path.basename(path))
        network.save_weights(local)
        tf.io.gfile.copy(local, path, overwrite=True)


def read_weights(network: keras.Model, path: str) -> None:
    if not tf.io.gfile.exists(path):
        raise WorkdirError(f"{path} is missing: the checkpoint is incomplete")
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, os.path.basename(path))
        tf.io.gfile.copy(path, local, overwrite=True)
        network.load_weights(local)


def _state_variables(model) -> dict[str, list]:
    """What state.npz holds besides the networks: each optimizer's variables (slots, step
    count) and the model's non-trainable variables (image pools, RNG), in a fixed order."""
    groups = {f"optimizer/{name}": model.optimizer_of(name).variables for name in model.NETWORKS}
    groups["non_trainable"] = model.non_trainable_variables
    return groups


class FolderCheckpoints(_Checkpoints):
    """JAX runs' checkpoints: one folder per step (see the module docstring)."""

    def __init__(self, model, workdir: str, keep: int, chief: bool = True):
        self.model = model
        self.root = os.path.join(workdir, CHECKPOINT_DIR)
        self.keep = keep
        self.chief = chief

    def candidates(self) -> list[str]:
        return [path for _, path in reversed(_folders(self.root))]

    def restore(self, path: str) -> None:
        if not is_folder_checkpoint(path):
            raise WorkdirError(
                f"{path} is not a JAX run's checkpoint folder (a TensorFlow run's? resume it "
                "with --backend=tensorflow)")
        for name in self.model.NETWORKS:
            read_weights(getattr(self.model, name), os.path.join(path, f"{name}.weights.h5"))
        with tf.io.gfile.GFile(os.path.join(path, "state.npz"), "rb") as f:
            state = dict(np.load(io.BytesIO(f.read())))
        for group, variables in _state_variables(self.model).items():
            # By position: variable paths hold Keras' auto-numbered layer names, which differ
            # from process to process; shapes must match one for one.
            saved = [state[f"{group}/{i}"] for i in range(len(state.get(f"{group}/names", [])))]
            shapes = [tuple(a.shape) for a in saved]
            if shapes != [tuple(v.shape) for v in variables]:
                raise WorkdirError(f"{path}: {group} holds {len(saved)} arrays of shapes {shapes}, "
                                   f"the model needs {[tuple(v.shape) for v in variables]}")
            for variable, value in zip(variables, saved):
                variable.assign(value)

    def save(self, step: int) -> str:
        """Writes on process 0 (every process holds the same values); returns the path."""
        if not self.chief:
            self._current = os.path.join(self.root, f"ckpt-{step}")
            return self._current
        arrays = {}
        for group, variables in _state_variables(self.model).items():
            arrays[f"{group}/names"] = np.array([v.path for v in variables])
            for i, variable in enumerate(variables):
                arrays[f"{group}/{i}"] = np.asarray(variable.numpy())
        path = _write_folder(self.model, os.path.join(self.root, f"ckpt-{step}"),
                             self.model.NETWORKS, marker=str(step), state=arrays,
                             what="the checkpoint")
        for _, old in _folders(self.root)[: -self.keep]:
            tf.io.gfile.rmtree(old)
        self._current = path
        return path


def _write_folder(model, path: str, networks, marker: str, state: dict | None = None,
                  what: str = "the generators") -> str:
    """A checkpoint folder: each named network's .weights.h5, then state.npz, then COMPLETE.
    On a full disk the folder is removed (DiskFull)."""
    def needed() -> int:
        return sum(np.asarray(v.numpy()).nbytes for name in networks
                   for v in getattr(model, name).weights) + sum(
                       a.nbytes for a in (state or {}).values())

    def remove_partial() -> None:
        if tf.io.gfile.exists(path):
            tf.io.gfile.rmtree(path)

    remove_partial()
    with disk.writing(path, needed, what, cleanup=remove_partial):
        tf.io.gfile.makedirs(path)
        for name in networks:
            _write_weights(getattr(model, name), os.path.join(path, f"{name}.weights.h5"))
        if state is not None:
            buffer = io.BytesIO()
            np.savez(buffer, **state)
            with tf.io.gfile.GFile(os.path.join(path, "state.npz"), "wb") as f:
                f.write(buffer.getvalue())
        with tf.io.gfile.GFile(os.path.join(path, COMPLETE), "w") as f:
            f.write(f"{marker}\n")
    return path


def training_checkpoints(model, workdir: str, keep: int, chief: bool = True):
    """The checkpoint format of the backend the model runs on; `chief`: this process writes."""
    if keras.backend.backend() == "tensorflow":
        return TensorFlowCheckpoints(model, workdir, keep, chief)
    return FolderCheckpoints(model, workdir, keep, chief)


def save_generators(model, path: str) -> str:
    """Just the generators, as a checkpoint folder that `restore_generators` reads."""
    return _write_folder(model, path, model.GENERATORS, marker="generators")


def save_config(cfg: ml_collections.ConfigDict, workdir: str) -> None:
    path = os.path.join(workdir, CONFIG_FILE)
    tmp = path + ".tmp"
    text = cfg.to_json_best_effort(indent=2, sort_keys=True)
    with disk.writing(path, len(text), "the run's config",
                      cleanup=lambda: tf.io.gfile.exists(tmp) and tf.io.gfile.remove(tmp)):
        with tf.io.gfile.GFile(tmp, "w") as f:
            f.write(text)
        tf.io.gfile.rename(tmp, path, overwrite=True)


def load_config(workdir: str) -> ml_collections.ConfigDict:
    path = os.path.join(workdir, CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        raise WorkdirError(f"{path} not found: --workdir must be a monet_tf training directory")
    with tf.io.gfile.GFile(path) as f:
        return ml_collections.ConfigDict(json.load(f))


# What a config written before a field existed meant by it.
_DEFAULTS = {"model.kind": "cyclegan",
             "loss.nce_layers": "padded_input,down_1,down_2,block_1,block_5",
             "loss.nce_units": 256, "model.latent_dim": 128, "model.dcgan_width": 512}


def _lookup(cfg: ml_collections.ConfigDict, dotted: str):
    value = cfg
    for part in dotted.split("."):
        value = value.get(part) if hasattr(value, "get") else None
    return _DEFAULTS.get(dotted) if value is None else value


def check_resumable(saved: ml_collections.ConfigDict, cfg: ml_collections.ConfigDict,
                    workdir: str) -> None:
    """Refuses to resume a run whose checkpoints were made with incompatible settings."""
    diffs = [
        f"{key}: checkpoint has {_lookup(saved, key)!r}, this run asks for {_lookup(cfg, key)!r}"
        for key in RESUME_KEYS
        if _lookup(saved, key) != _lookup(cfg, key)
    ]
    # Each backend reads its own full training state only (the networks alone are portable).
    backends = [_lookup(c, "runtime.backend") or "tensorflow" for c in (saved, cfg)]
    if backends[0] != backends[1]:
        diffs.append(f"runtime.backend: checkpoint has {backends[0]!r}, this run asks for "
                     f"{backends[1]!r} (resume with --backend={backends[0]})")
    if diffs:
        raise WorkdirError(
            f"--workdir={workdir} holds checkpoints of a run with other settings; use a new "
            "workdir or the same settings:\n  " + "\n  ".join(diffs)
        )


def restore_generators(workdir: str, checkpoint_path: str | None = None):
    """Builds the run's exported generators from its saved config and restores them from a
    checkpoint. Returns ({name: generator}, config); critics and optimizers are not built."""
    from monet_tf.models.families import build_generators

    cfg = load_config(workdir)
    path = checkpoint_path or latest_checkpoint(workdir)
    if path is None:
        raise WorkdirError(f"no checkpoint in {os.path.join(workdir, CHECKPOINT_DIR)}")
    folder = is_folder_checkpoint(path)
    if not folder and not tf.io.gfile.exists(path + ".index"):
        raise WorkdirError(f"--checkpoint={path}: no such checkpoint ({path}.index is missing)")
    generators = build_generators(cfg)
    if folder:
        for name, generator in generators.items():
            read_weights(generator, os.path.join(path, f"{name}.weights.h5"))
    else:
        status = generators_checkpoint(generators).restore(path)
        status.expect_partial().assert_existing_objects_matched()
    return generators, cfg
