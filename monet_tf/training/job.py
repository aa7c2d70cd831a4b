"""The training job: config -> data -> model (cfg.model.kind) -> epochs with checkpoints ->
exported generators.

Every epoch's batches are a function of (seed, epoch) alone, and the step counters, image pools
and random state live in checkpointed variables, so a run stopped at any point and resumed from
its last checkpoint continues exactly as if it had never stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import keras
import ml_collections
import tensorflow as tf

from monet_tf.training import callbacks as cb
from monet_tf.training import workdir_lock
from monet_tf.models import checkpoints as ckpt
from monet_tf import data
from monet_tf.inference import submission
from monet_tf.config_check import ConfigError, check, check_global_batch, parse_duration
from monet_tf.runtime import disk
from monet_tf.runtime.console import warn
from monet_tf.inference.export import export_generators
from monet_tf.scoring.inception import InceptionWeightsError, resolve_weights
from monet_tf.models import generator_multiple, total_steps
from monet_tf.models.dcgan import fixed_noise
from monet_tf.models.families import build_model, translates_photos
from monet_tf.models.precision_probe import ProbeShape, cpu_precision
from monet_tf.runtime.devices import Runtime, current, from_tf_strategy

METRICS_CSV = "metrics.csv"


def best_weights(model) -> str:
    """The file beside export/best that holds the best generator's weights, by its name
    (photo_to_monet.weights.h5; noise_to_monet.weights.h5 for a DCGAN)."""
    return f"{model.GENERATORS[0]}.weights.h5"


class TrainingStopped(RuntimeError):
    """Training ended early by a signal; a checkpoint was saved. `exit_code` follows the shell."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint was left untouched."""


@dataclasses.dataclass
class TrainResult:
    workdir: str
    epochs_done: int
    export_dir: str
    history: dict[str, list[float]]
    steps_done: int = 0
    epochs_planned: int = 0
    stopped_by_budget: bool = False
    model: object = None


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def epoch_seed(seed: int, epoch: int) -> int:
    """A distinct, reproducible data seed per epoch."""
    return (seed * 1_000_003 + epoch * 7_919 + 17) % (2**31 - 1)


def global_step(model) -> int:
    """Training steps done: the first network's optimizer's count (Keras' `model.optimizer`)."""
    return int(model.optimizer.iterations.numpy())


def _first_batch(dataset: tf.data.Dataset, n: int) -> tf.Tensor:
    return next(iter(dataset.batch(n)))


def _init_wandb(cfg: ml_collections.ConfigDict, workdir: str):
    import wandb

    id_file = os.path.join(workdir, "wandb_run_id")
    run_id = None
    if tf.io.gfile.exists(id_file):
        with tf.io.gfile.GFile(id_file) as f:
            run_id = f.read().strip()
    run = wandb.init(
        project=cfg.wandb.project, entity=cfg.wandb.entity or None,
        name=cfg.wandb.run_name or None, config=cfg.to_dict(), dir=workdir,
        id=run_id, resume="allow",
    )
    with tf.io.gfile.GFile(id_file, "w") as f:
        f.write(run.id)
    return run


def _write_demo(export_dir: str, photos: tf.Tensor, out_dir: str) -> list[str]:
    """Translates a few held-out photos through the exported SavedModel, as a user would."""
    tf.io.gfile.makedirs(out_dir)
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    images = data.to_uint8(photos)
    (translated,) = serve(images).values()
    paths = []
    for i, (before, after) in enumerate(zip(images, translated)):
        for tag, image in (("photo", before), ("monet", after)):
            path = os.path.join(out_dir, f"{i:03d}_{tag}.jpg")
            tf.io.write_file(path, tf.io.encode_jpeg(image, quality=95))
            paths.append(path)
    return paths


def _write_generated_demo(export_dir: str, count: int, seed: int, out_dir: str) -> list[str]:
    """A few paintings from the exported noise generator, from the noise `python -m
    monet_tf.inference.predict --count` draws with the same seed."""
    tf.io.gfile.makedirs(out_dir)
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    (spec,) = serve.structured_input_signature[1].values()
    (paintings,) = serve(tf.constant(fixed_noise(count, spec.shape[1], seed))).values()
    paths = []
    for i, image in enumerate(paintings):
        path = os.path.join(out_dir, f"{i:03d}_noise_to_monet.jpg")
        tf.io.write_file(path, tf.io.encode_jpeg(image, quality=95))
        paths.append(path)
    return paths


@dataclasses.dataclass
class Run:
    """What the stages of a run share once its config is resolved: the config as config.json
    records it, the data, and the step arithmetic."""

    cfg: ml_collections.ConfigDict
    workdir: str
    sources: data.DataSources
    report: data.DataReport
    photos: bool  # Whether the family translates photos (every kind but dcgan).
    global_batch: int
    steps: int  # Per epoch.
    last_step: int
    total_epochs: int
    submission_path: str | None
    budget: float | None
    started: float
    mifid: bool = False  # Scores include MiFID (Inception weights found), not the card alone.


def train(cfg: ml_collections.ConfigDict, workdir: str,
          runtime: Runtime | tf.distribute.Strategy | None = None, verbose: int | str = "auto",
          extra_callbacks: tuple[keras.callbacks.Callback, ...] = ()) -> TrainResult:
    """Trains (or resumes) the run in `workdir` and exports its generators under `workdir/export`.

    runtime: where to train (monet_tf.runtime.devices.make_runtime); a tf.distribute strategy
    also works on TensorFlow; None: the current strategy / JAX's first device.
    Raises TrainingStopped after SIGINT/SIGTERM (a checkpoint was saved), TrainingDiverged on a
    non-finite loss (nothing saved), ConfigError / DataError / WorkdirError on bad input
    before training (WorkdirInUse: another run holds the workdir; or none of its checkpoints
    can be read), and DiskFull when a write finds no space (nothing partial left).
    """
    started = time.monotonic()
    runtime = _as_runtime(runtime)
    ckpt.check_workdir(workdir, runtime.process_index)
    with workdir_lock.hold(workdir, runtime), disk.writing(workdir, then=RERUN_WITH_SPACE):
        run = resolve(cfg, workdir, runtime, started)
        model, manager = restore(run, runtime)
        done, history, stopped_by_budget = fit(run, runtime, model, manager, verbose,
                                               extra_callbacks)
        export_dir = export(run, runtime, model)
        if run.submission_path:
            _write_submission(model, run.cfg, runtime, run.sources, workdir,
                              run.submission_path, started)
    return TrainResult(workdir, done, export_dir, history, steps_done=global_step(model),
                       epochs_planned=run.total_epochs, stopped_by_budget=stopped_by_budget,
                       model=model)


RERUN_WITH_SPACE = ("The checkpoints before it are intact: free some space, then rerun the same "
                    "command to continue from the last one")


def _as_runtime(runtime) -> Runtime:
    if runtime is None:
        return current()
    return runtime if isinstance(runtime, Runtime) else from_tf_strategy(runtime)


def resolve(cfg: ml_collections.ConfigDict, workdir: str, runtime: Runtime,
            started: float) -> Run:
    """Everything a user can get wrong, before any model is built: the config, the workdir,
    the Inception weights, the submission's output, the data (every record decoded once); then
    precision and XLA on this runtime and the resolved config that config.json records."""
    check(cfg, runtime.backend)
    budget = parse_duration(cfg.train.time_budget)
    submission_path = submission.resolve_path(cfg.submission.path)
    # A DCGAN trains on the paintings alone: an epoch is a pass over them, and no photo is
    # decoded for training, translated for the demo or submitted.
    photos = translates_photos(cfg.model.get("kind", "cyclegan"))
    mifid = _mifid_on(cfg, photos)
    if cfg.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    jit_compile, xla_note = runtime.xla(cfg.train.jit_compile)  # Bad values stop here.
    shape = ProbeShape.of(cfg, jit_compile)
    precision = runtime.precision(cfg.train.mixed_precision,
                                  lambda backend: cpu_precision(backend, shape))
    keras.utils.set_random_seed(cfg.seed)  # After auto's probe on a CPU, which builds a network.
    print(f"{runtime.describe()}; precision {precision}; {xla_note}", flush=True)

    sources = data.find_sources(cfg.data.data_dir, cfg.data.monet, cfg.data.photo)
    print(sources.describe(), flush=True)
    report = data.validate(sources, min_image_size=cfg.data.min_image_size,
                           skip_bad_records=cfg.data.skip_bad_records,
                           heldout_fraction=cfg.data.heldout_fraction)
    print(report.describe(), flush=True)
    if submission_path and not photos:
        submission.preflight(None, submission_path, cfg.submission)
    elif submission_path:
        if sources.photo.kind == "tfds":
            raise ConfigError("submission.path: the photos to translate must be files "
                              "(TFRecords or images), not TFDS")
        submission.preflight(sources.photo.spec, submission_path, cfg.submission)
    global_batch = cfg.train.batch_size * runtime.replicas
    check_global_batch(cfg, runtime.replicas,
                       data.train_photo_count(report) if photos else report.monet.count,
                       "photos" if photos else "paintings")
    steps = data.steps_per_epoch(report, cfg.data, global_batch,
                                 domain="photo" if photos else "monet")

    cfg = ml_collections.ConfigDict(cfg.to_dict())
    cfg.data.steps_per_epoch = steps
    cfg.train.replicas = runtime.replicas
    cfg.train.global_batch_size = global_batch
    cfg.runtime = {**runtime.as_config(), "precision": precision, "jit_compile": jit_compile}
    last_step = total_steps(cfg, steps)
    _same_run_everywhere(runtime, cfg)
    if tf.io.gfile.exists(os.path.join(workdir, ckpt.CONFIG_FILE)) and ckpt.latest_checkpoint(workdir):
        ckpt.check_resumable(ckpt.load_config(workdir), cfg, workdir)
    return Run(cfg, workdir, sources, report, photos, global_batch, steps, last_step,
               math.ceil(last_step / steps), submission_path, budget, started, mifid)


def _mifid_on(cfg: ml_collections.ConfigDict, photos: bool) -> bool:
    """Whether the scores every eval.every epochs include MiFID. A weights file the config names
    must exist (hours later is too late to find it does not); with none named, Keras' ImageNet
    file is used when it can be had, else the quality card scores alone (a translator's: a
    DCGAN has no photos to card), and a line says so."""
    if cfg.eval.every <= 0:
        return False
    try:
        resolve_weights(cfg.eval.inception_weights or "imagenet")
        return True
    except InceptionWeightsError as err:
        if cfg.eval.inception_weights:
            raise InceptionWeightsError(
                f"--config.eval.every={cfg.eval.every}: MiFID needs InceptionV3 weights: {err} "
                "Or score with the quality card alone: leave --config.eval.inception_weights "
                "empty. Or train without scores: --config.eval.every=0.") from None
    scores = (f"every {cfg.eval.every} epochs the quality card alone scores, and chooses "
              "export/best" if photos else "a DCGAN has no photos for the quality card: no scores")
    print(f"scores: MiFID is off (no InceptionV3 ImageNet weights in the Keras cache, none "
          f"downloadable, none named by --config.eval.inception_weights); {scores}.", flush=True)
    return False


def restore(run: Run, runtime: Runtime):
    """The model, built with every variable, and its checkpoint manager, restored from the
    latest checkpoint (every process from the same one); config.json written beside them."""
    cfg = run.cfg
    with runtime.scope():
        model = build_model(cfg, steps_per_epoch=run.steps, global_batch_size=run.global_batch,
                            jit_compile=cfg.runtime.jit_compile, replicas=runtime.replicas)
    manager = ckpt.training_checkpoints(model, run.workdir, cfg.train.keep_checkpoints,
                                        chief=runtime.chief)
    restored = manager.restore_newest(warn if runtime.chief else lambda message: None)
    step = global_step(model)
    _same_checkpoint_everywhere(runtime, restored, step, run.workdir)
    start_epoch, offset = divmod(step, run.steps)
    if step:
        print(f"Resuming from {restored}: epoch {start_epoch + 1}, "
              f"step {offset} of {run.steps}.", flush=True)
    if runtime.chief:
        ckpt.save_config(cfg, run.workdir)
        cb.MetricsCSV.drop_epochs_from(os.path.join(run.workdir, METRICS_CSV), start_epoch)
    _same_workdir_everywhere(runtime, cfg, run.workdir)
    return model, manager


def fit(run: Run, runtime: Runtime, model, manager, verbose: int | str = "auto",
        extra_callbacks: tuple[keras.callbacks.Callback, ...] = ()):
    """The epochs left, each a fit over exactly its batches, from the step the model is at:
    checkpoints, the time budget and signals between steps. (epochs done, history, whether the
    budget stopped it)."""
    cfg, steps = run.cfg, run.steps
    saved_step = global_step(model)
    start_epoch, offset = divmod(saved_step, steps)
    clock = cb.TimeBudget(run.started + run.budget if run.budget else math.inf)
    # One agreement of the processes after each step, for a signal and the clock both.
    stop = cb.StopOnSignal(lambda: manager.latest, agree=runtime.any_process_each, clock=clock)
    guard = cb.NonFiniteLossGuard()
    callbacks, wandb_run = _callbacks(run, runtime, model, [guard, stop])
    callbacks.extend(extra_callbacks)
    if not runtime.chief:
        verbose = 0

    def budget_stop(where: str, why: str) -> int:
        return _budget_stop(manager, model, run.budget, run.started, where, run.total_epochs,
                            run.last_step, why, saved_step)

    history: dict[str, list[float]] = {}
    last_epoch_seconds = None
    done = start_epoch
    stop.install()
    try:
        for epoch in range(start_epoch, run.total_epochs):
            if runtime.any_process(bool(last_epoch_seconds) and (
                    time.monotonic() + (last_epoch_seconds or 0) > clock.deadline)):
                saved_step = budget_stop(f"before epoch {epoch + 1}", "the next epoch needs "
                                         f"about {format_duration(last_epoch_seconds or 0)}")
                break
            epoch_started = time.monotonic()
            todo = min(steps, run.last_step - epoch * steps) - offset

            def epoch_data(epoch=epoch, offset=offset, todo=todo):
                # This process's share of every global batch, from its own part of the data.
                # Exactly `todo` batches: Keras runs whole `steps_per_execution` groups and
                # stops early only when the data ends, so an endless dataset would overshoot.
                return data.train_dataset(
                    run.sources, run.report, cfg.data, run.global_batch,
                    seed=epoch_seed(cfg.seed, epoch), photos=run.photos,
                    host=(runtime.process_index, runtime.processes),
                ).skip(offset).take(todo)

            result = model.fit(runtime.host_batches(epoch_data), initial_epoch=epoch,
                               epochs=epoch + 1,
                               steps_per_epoch=todo, callbacks=callbacks, verbose=verbose,
                               shuffle=False)
            offset = 0
            if guard.bad is not None:
                bad_epoch, batch, name, value = guard.bad
                raise TrainingDiverged(
                    f"{name} became {value} at epoch {bad_epoch + 1}, batch {batch + 1}; stopped "
                    f"without saving. Last good checkpoint: {manager.latest or 'none'}. "
                    "Lower the learning rate or check the data."
                )
            for key, values in result.history.items():
                history.setdefault(key, []).extend(float(v) for v in values)
            # A signal may arrive after the epoch's last step, on one process only.
            if stop.agreed():
                path = manager.save(global_step(model))
                raise TrainingStopped(
                    f"{stop.signal_name}: saved {path} at step {global_step(model)}; "
                    "rerun the same command to resume.",
                    exit_code=130 if stop.signal_name == "SIGINT" else 143,
                )
            if clock.reached:
                saved_step = budget_stop(f"in epoch {epoch + 1}", "it ran out during the epoch")
                break
            done = epoch + 1
            last_epoch_seconds = time.monotonic() - epoch_started
            if done % cfg.train.checkpoint_every == 0 or done == run.total_epochs:
                manager.save(global_step(model))
                saved_step = global_step(model)
    finally:
        stop.uninstall()
        if wandb_run is not None:
            wandb_run.finish()
    return done, history, clock.reached or done < run.total_epochs


def _callbacks(run: Run, runtime: Runtime, model, controls: list):
    """(callbacks, wandb run or None): `controls` (the NaN guard, the stop on a signal or the
    budget) and the scores on every process (losses are global, MiFID's features gathered from
    all); progress, logs, grids and wandb on process 0 alone, which writes the files."""
    cfg, workdir = run.cfg, run.workdir
    chief = runtime.chief
    callbacks = [*([cb.EpochProgbar(run.total_epochs)] if chief else []), *controls,
                 *_score_callbacks(cfg, run.sources, run.report, model, workdir,
                                   runtime.tf_strategy, chief, run.mifid,
                                   runtime.processes)]
    if not chief:
        return callbacks, None
    wandb_run = _init_wandb(cfg, workdir) if cfg.wandb.enabled else None
    tb_dir = os.path.join(workdir, "tensorboard") if cb.tensorboard_installed() else None
    if tb_dir is None:
        warn("tensorboard is not installed: TensorBoard logs are off; pip install tensorboard")
    metrics_csv = os.path.join(workdir, METRICS_CSV)
    samples = cfg.train.num_samples
    callbacks += [
        cb.MetricsCSV(metrics_csv),
        *([keras.callbacks.TensorBoard(tb_dir, update_freq="epoch", write_graph=False)]
          if tb_dir else []),
        cb.LossCurves(metrics_csv, os.path.join(workdir, "loss_curves.png")),
        cb.SampleGrid(
            _first_batch(data.heldout_photos(run.sources, run.report, cfg.data, samples), samples),
            _first_batch(data.eval_images(run.sources, run.report, "monet", cfg.data, samples),
                         samples),
            os.path.join(workdir, "samples"), cfg.train.sample_every, tb_dir, wandb_run),
    ]
    if wandb_run is not None:
        callbacks.append(cb.WandbMetrics(wandb_run))
    return callbacks, wandb_run


def export(run: Run, runtime: Runtime, model) -> str:
    """Process 0 exports the generators and translates a few held-out photos (a DCGAN: paints
    a few) through the export, as a user would; the export folder."""
    cfg, workdir = run.cfg, run.workdir
    export_dir = os.path.join(workdir, "export")
    if not runtime.chief:
        return export_dir
    export_all(model, cfg, export_dir, workdir)
    if run.photos:
        _write_demo(os.path.join(export_dir, "photo_to_monet"),
                    _first_batch(data.heldout_photos(run.sources, run.report, cfg.data,
                                                     cfg.train.demo_images),
                                 cfg.train.demo_images),
                    os.path.join(workdir, "demo"))
    else:
        _write_generated_demo(os.path.join(export_dir, "noise_to_monet"),
                              cfg.train.demo_images, cfg.seed, os.path.join(workdir, "demo"))
    return export_dir


def _budget_stop(manager, model, budget, started, where, total_epochs, last_step,
                 why, saved_step) -> int:
    """Saves (unless this step is saved already), says how far the run got, returns the step."""
    step = global_step(model)
    path = manager.latest if step == saved_step else manager.save(step)
    print(f"time budget {format_duration(budget)}: stopped {where} of {total_epochs}, at step "
          f"{step} of {last_step}, after "
          f"{format_duration(time.monotonic() - started)} ({why}); saved {path}. Exporting; "
          "rerun the same command to continue.", flush=True)
    return step


def _comparable(cfg: ml_collections.ConfigDict) -> dict:
    """The resolved config as flat keys, without what is this process's own (its devices)."""
    def flat(d, prefix=""):
        for key, value in d.items():
            if isinstance(value, dict):
                yield from flat(value, f"{prefix}{key}.")
            elif f"{prefix}{key}" != "runtime.devices":
                yield f"{prefix}{key}", value

    return dict(flat(json.loads(cfg.to_json_best_effort())))


def _same_run_everywhere(runtime: Runtime, cfg: ml_collections.ConfigDict) -> None:
    """Every process checks its resolved config (flags, config file, data counts) against
    process 0's, by digest, before any model is built: processes that disagree would wait
    forever in a collective or train on a mix. Names the keys that differ."""
    if runtime.processes == 1:
        return
    mine = _comparable(cfg)
    text = json.dumps(mine, sort_keys=True)
    texts = runtime.exchange("config", text)
    digests = [hashlib.sha256(t.encode()).hexdigest()[:12] for t in texts]
    for index, other_text in enumerate(texts):
        if digests[index] != digests[0]:
            other, chiefs = json.loads(other_text), json.loads(texts[0])
            differ = [f"{key}: {chiefs.get(key)!r} vs {other.get(key)!r}"
                      for key in sorted(set(chiefs) | set(other))
                      if chiefs.get(key) != other.get(key)]
            raise ConfigError(
                f"process {index}'s resolved config (digest {digests[index]}) differs from process "
                f"0's ({digests[0]}): {'; '.join(differ[:4])}. Run the same command, config file "
                "and data on every process")


def _same_checkpoint_everywhere(runtime: Runtime, latest: str | None, step: int,
                                workdir: str) -> None:
    """Every process resumed from the checkpoint process 0 resumed from."""
    steps = runtime.exchange("resume", str(step))
    if len(set(steps)) > 1:
        raise ckpt.WorkdirError(
            f"--workdir={workdir}: the processes resume from different steps ({', '.join(steps)}; "
            f"this one from {latest or 'none'}): the workdir must be one folder every process "
            "reads (gs://..., or a shared disk), the same path on every host")


def _same_workdir_everywhere(runtime: Runtime, cfg: ml_collections.ConfigDict,
                             workdir: str) -> None:
    """After process 0 wrote config.json, every other process reads it back: a workdir that is
    not shared (a local path on each host) is found now, not at the first resume."""
    runtime.exchange("config_written", "")
    if runtime.chief:
        return
    path = os.path.join(workdir, ckpt.CONFIG_FILE)
    if not tf.io.gfile.exists(path) or _comparable(ckpt.load_config(workdir)) != _comparable(cfg):
        raise ckpt.WorkdirError(
            f"--workdir={workdir}: process {runtime.process_index} does not see the {path} that "
            "process 0 wrote there: the workdir must be one folder every process reads "
            "(gs://..., or a shared disk), the same path on every host")


def export_all(model, cfg: ml_collections.ConfigDict, export_dir: str, workdir: str) -> str:
    """The model's generators (model.GENERATORS) as uint8 SavedModels. A SavedModel is traced
    by TensorFlow, so a JAX
    run hands its generators' weights to `python -m monet_tf export` on the TensorFlow backend
    in a subprocess (on the CPU, leaving the accelerator to this process)."""
    if keras.backend.backend() == "tensorflow":
        return export_generators({name: getattr(model, name) for name in model.GENERATORS},
                                 export_dir, multiple=generator_multiple(cfg.model.generator))
    with tempfile.TemporaryDirectory(prefix="monet_tf_export_") as tmp:
        weights = ckpt.save_generators(model, os.path.join(tmp, "generators"))
        env = {**os.environ, "KERAS_BACKEND": "tensorflow", "CUDA_VISIBLE_DEVICES": "-1",
               "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        env.pop("XLA_FLAGS", None)
        result = subprocess.run(
            [sys.executable, "-m", "monet_tf", "export", f"--workdir={workdir}",
             f"--checkpoint={weights}", f"--output={export_dir}", "--backend=tensorflow"],
            capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise disk.reported_by(result.stderr, export_dir) or RuntimeError(
            f"exporting the generators failed:\n{result.stderr[-3000:]}")
    return export_dir


def _best_score(workdir: str) -> dict | None:
    """export/best/score.json: {"epoch", "by": "mifid" | "card", "mifid" or "card_score"}."""
    path = os.path.join(workdir, "export", "best", "score.json")
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        score = json.load(f)
    score.setdefault("by", "mifid")  # Written before the card existed.
    return score


def _describe_best(score: dict) -> str:
    if score["by"] == "mifid":
        return f"MiFID {score['mifid']:.2f}, epoch {score['epoch']}"
    return f"quality card score {score['card_score']:.3f}, epoch {score['epoch']}"


def _score_callbacks(cfg, sources, report, model, workdir, strategy, chief: bool = True,
                     mifid: bool = False, processes: int = 1) -> list[keras.callbacks.Callback]:
    """When scores are on (cfg.eval.every > 0): the quality card of a translator's held-out
    photos, and MiFID when `mifid` (Inception weights found). The one that chooses `export/best`
    keeps it (process 0 writes it): MiFID when on, else the card's score.

    MiFID scores the model's first generator: photo_to_monet on held-out photos, or a DCGAN's
    noise_to_monet on eval.num_images fixed noise vectors (the same every time); every process
    scores, each its part of every batch. The card needs photos and their translations (not a
    DCGAN's) on one host: a run of several processes cards its exports with `monet-tf quality`.
    """
    if cfg.eval.every <= 0:
        return []
    from monet_tf.scoring.mifid_callback import MiFIDCallback
    from monet_tf.scoring.quality_callback import QualityCardCallback

    best_dir = os.path.join(workdir, "export", "best")
    by, key = ("mifid", "mifid") if mifid else ("card", "card_score")
    previous = _best_score(workdir)  # A best by the other score is replaced by this one's.
    best = previous[key] if previous and previous["by"] == by else math.inf
    name = model.GENERATORS[0]

    def on_new_best(epoch: int, score: float) -> None:
        export_all(model, cfg, best_dir, workdir)
        # Beside the SavedModel, for the submission's translation on the run's own devices.
        getattr(model, name).save_weights(os.path.join(best_dir, best_weights(model)))
        with tf.io.gfile.GFile(os.path.join(best_dir, "score.json"), "w") as f:
            json.dump({"epoch": epoch + 1, "by": by, key: score}, f)

    callbacks: list[keras.callbacks.Callback] = []
    monets = data.eval_images(sources, report, "monet", cfg.data, cfg.eval.num_images)
    if "photo_to_monet" in model.GENERATORS:
        inputs = data.heldout_photos(sources, report, cfg.data, cfg.eval.num_images)
        if processes > 1 and chief:
            print("scores: the quality card is not computed in a run of several processes; "
                  "card its exports with monet-tf quality", flush=True)
        if processes == 1:
            callbacks.append(QualityCardCallback(
                photos=inputs, monets=monets, image_size=cfg.data.image_size,
                every_n_epochs=cfg.eval.every, batch_size=cfg.eval.batch_size,
                on_new_best=on_new_best if chief and not mifid else None, initial_best=best,
                seed=cfg.seed, generator=name))
    else:
        inputs = tf.data.Dataset.from_tensor_slices(fixed_noise(
            cfg.eval.num_images, int(getattr(model, name).input_shape[-1]), seed=cfg.seed + 1))
    if mifid:
        callbacks.append(MiFIDCallback(
            photos=inputs, monets=monets, every_n_epochs=cfg.eval.every,
            batch_size=cfg.eval.batch_size,
            inception_weights=cfg.eval.inception_weights or "imagenet",
            strategy=strategy, on_new_best=on_new_best if chief else None, initial_best=best,
            generator=name,
        ))
    return callbacks


def _write_submission(model, cfg, runtime, sources, workdir, path, started) -> None:
    """Every photo through the best generator (by MiFID, else the card) or the last, on the
    run's devices; a DCGAN's submission.count paintings from noise. Every process translates
    its part of each batch; process 0 writes the zip, the others a copy they throw away."""
    name = model.GENERATORS[0]
    generator = getattr(model, name)
    best = os.path.join(workdir, "export", "best", best_weights(model))
    # Once process 0's exports are written: every process loads the same weights.
    which = "the last"
    if runtime.exchange("submission", str(tf.io.gfile.exists(best)))[0] == "True":
        generator.load_weights(best)
        which = f"the best ({_describe_best(_best_score(workdir))})"
    if not runtime.chief:
        with tempfile.TemporaryDirectory(prefix="monet_tf_submission_") as scratch:
            _translate_all(model, cfg, runtime, sources, os.path.join(scratch, "images.zip"),
                           generator, name, which, verbose=False)
        return
    result = _translate_all(model, cfg, runtime, sources, path, generator, name, which)
    print(f"submission: {result.path}: {result.count} images in "
          f"{format_duration(result.seconds)}; {format_duration(time.monotonic() - started)} "
          "since the run started", flush=True)


def _translate_all(model, cfg, runtime, sources, path, generator, name, which,
                   verbose: bool = True) -> submission.Submission:
    settings = cfg.submission
    if "photo_to_monet" not in model.GENERATORS:
        if verbose:
            print(f"submission: generating {settings.count} paintings with {which} {name}",
                  flush=True)
        return submission.write_generated(generator, runtime, path, int(settings.count),
                                          batch_size=settings.batch_size,
                                          allow_any_count=settings.allow_any_count,
                                          seed=cfg.seed, verbose=verbose)
    if verbose:
        print(f"submission: translating {sources.photo.describe()} with {which} {name}",
              flush=True)
    return submission.write(generator, runtime, sources.photo.spec, path,
                            batch_size=settings.batch_size,
                            allow_any_count=settings.allow_any_count, verbose=verbose)
