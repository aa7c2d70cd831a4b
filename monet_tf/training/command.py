"""`monet-tf train`, also `python run_train.py`: trains (or resumes) a run, exports its
generators and writes its submission; `--dry_run` tries a config on the bundled sample and
prints what its full run costs.

  monet-tf train                                        # configs/demo.py, tfrecords/sample
  monet-tf train --strategy=tpu --config=configs/kaggle_tpu.py    # JAX on Kaggle's TPU VMs
  monet-tf train --backend=jax --strategy=cpu --cpu_replicas=2    # JAX over 2 host devices
  monet-tf train --config=configs/kaggle_tpu.py --dry_run         # a few steps, and the plan

Rerunning the same command with the same --workdir resumes from the latest checkpoint. The
defaults (configs/demo.py, the sample) are read beside the script that was run (run_train.py,
also in the offline Kaggle bundle) or, for `monet-tf`, in the checkout monet_tf is installed
from.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import sys
import tempfile
import time

from absl import flags

from monet_tf.runtime import cluster as clusters
from monet_tf.runtime import commandline
from monet_tf.runtime.backend import BACKEND_HELP, BackendError, select_backend

FLAGS = flags.FLAGS


def checkout() -> pathlib.Path:
    """Where configs/ and tfrecords/sample are: beside the script that was run (run_train.py),
    else the checkout monet_tf is installed from, else the working folder."""
    for folder in (pathlib.Path(sys.argv[0]).resolve().parent,
                   pathlib.Path(__file__).resolve().parents[2]):
        if (folder / "configs").is_dir():
            return folder
    return pathlib.Path.cwd()


def define_flags() -> None:
    commandline.define_config(
        "config", str(checkout() / "configs" / "demo.py"),
        "Experiment config file (configs/*.py).", lock_config=True)
    flags.DEFINE_enum("strategy", "cpu", ["cpu", "gpu", "tpu"], "Where to train.")
    flags.DEFINE_string("backend", "auto", BACKEND_HELP)
    flags.DEFINE_string("tpu", "local", "TPU name for --strategy=tpu ('local' on a TPU VM).")
    flags.DEFINE_integer(
        "cpu_replicas", 1, "With --strategy=cpu: replicas over that many logical CPU devices "
        "(host devices on JAX).")
    flags.DEFINE_string(
        "data_dir", None, "Kaggle-layout data folder (overrides config.data.data_dir).")
    flags.DEFINE_string(
        "workdir", None, "Output folder (checkpoints, logs, samples, export). "
        "Default: runs/<config file name>.")
    flags.DEFINE_string(
        "submission", None, "Write the Kaggle images.zip here after training (config: "
        "submission.path; the Kaggle configs write /kaggle/working/images.zip inside a notebook).")
    flags.DEFINE_bool(
        "dry_run", False, "Build the config's models, train a few steps on the bundled sample, "
        "write a small zip, and print the time and memory the full run would need (cfg.estimate).")
    flags.DEFINE_string(
        "compile_for", "", "With --dry_run: also compile the config's programs for this TPU slice "
        "(v5e-8, v6e-1, ...) with XLA:TPU (needs libtpu, no TPU) and plan from its FLOPs and "
        "memory.")
    flags.DEFINE_enum(
        "compile_effort", "default", ["default", "fast"], "With --compile_for: XLA's optimisation "
        "effort; fast takes about half the time, its memory figures a less optimised program's.")
    flags.DEFINE_integer(
        "num_processes", None, "Processes of a multi-host run, one per host, the same on each "
        "(JAX; default KERAS_DISTRIBUTION_NUM_PROCESSES; TensorFlow: the workers of TF_CONFIG).")
    flags.DEFINE_integer(
        "process_id", None, "This process's index, 0 to --num_processes - 1; 0 writes the files "
        "(default KERAS_DISTRIBUTION_PROCESS_ID).")
    flags.DEFINE_string(
        "coordinator_address", None, "host:port of process 0, the same on every process (default "
        "the first of KERAS_DISTRIBUTION_JOB_ADDRESSES, or JAX_COORDINATOR_ADDRESS).")
    flags.DEFINE_float(
        "coordinator_timeout", clusters.DEFAULT_TIMEOUT_S,
        "Seconds every process waits for the others to start before giving up.")
    flags.DEFINE_float(
        "heartbeat_timeout", clusters.DEFAULT_HEARTBEAT_S,
        "Seconds of silence after which a process of the run counts as lost and the others stop.")
    flags.DEFINE_enum(
        "progress", "bar", ["bar", "epoch"], "bar: Keras' progress bar, redrawn in place at "
        "every step (a terminal); epoch: one line at the end of each epoch (a notebook cell or a "
        "log file, where a redrawn bar piles up).")
    flags.DEFINE_bool("wandb", False, "Log to Weights & Biases (respects WANDB_MODE).")
    flags.DEFINE_string("wandb_project", None, "wandb project.")
    flags.DEFINE_string("wandb_entity", None, "wandb entity (team or user).")
    flags.DEFINE_string("wandb_run_name", None, "wandb run name.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        commandline.fail(f"unexpected arguments: {' '.join(argv[1:])}; every setting is a flag")
    home = checkout()
    started = time.monotonic()
    try:  # Before anything imports Keras: it reads its backend once.
        backend = select_backend(FLAGS.backend, FLAGS.strategy, FLAGS.cpu_replicas)
    except BackendError as e:
        commandline.fail(str(e))
    from monet_tf.config_check import ConfigError, check

    cfg = FLAGS.config
    try:  # Every field, before any data is read or model built.
        check(cfg, backend)
    except ConfigError as e:
        commandline.fail(str(e))
    if FLAGS.compile_for:
        from monet_tf.runtime import tpus

        problem = None if FLAGS.dry_run else (
            "--compile_for needs --dry_run (or run monet-tf compile-tpu)")
        try:
            tpus.topology(FLAGS.compile_for)
        except tpus.UnknownTopology as e:
            problem = f"--compile_for={FLAGS.compile_for}: {e}"
        if problem:
            commandline.fail(problem)
    from monet_tf.models.checkpoints import WorkdirError
    from monet_tf.data import DataError
    from monet_tf.data.sources import KAGGLE_INPUT
    from monet_tf.scoring.inception import InceptionWeightsError
    from monet_tf.inference.submission import SubmissionError
    from monet_tf.runtime.devices import make_runtime, stop_for_lost
    from monet_tf.runtime.tf_strategy import StrategyError
    from monet_tf.training.job import TrainingDiverged, TrainingStopped, format_duration, train

    with cfg.unlocked():
        if FLAGS.data_dir is not None:
            cfg.data.data_dir = FLAGS.data_dir
        elif not (cfg.data.data_dir or cfg.data.monet or cfg.data.photo
                  or os.path.isdir(KAGGLE_INPUT)):
            # The sample beside this script: also there when monet_tf is an installed wheel
            # (the offline Kaggle bundle), where the package has no tfrecords/ of its own.
            cfg.data.data_dir = str(home / "tfrecords" / "sample")
        cfg.wandb.enabled = cfg.wandb.enabled or FLAGS.wandb
        for field in ("project", "entity", "run_name"):
            if FLAGS[f"wandb_{field}"].value is not None:
                cfg.wandb[field] = FLAGS[f"wandb_{field}"].value
        if FLAGS.submission is not None:
            cfg.submission.path = FLAGS.submission
    config_path = FLAGS["config"].config_filename
    workdir = FLAGS.workdir or os.path.join("runs", pathlib.Path(config_path).stem)
    reduced = None
    if FLAGS.dry_run:
        from monet_tf.training import plan
        from monet_tf.training import tpu_compile

        workdir = FLAGS.workdir or tempfile.mkdtemp(prefix="monet_tf_dry_run_")
        compiled = None
        if FLAGS.compile_for:
            print(f"compiling the full config for {FLAGS.compile_for} with XLA:TPU (no TPU "
                  "needed; minutes at full size) ...", flush=True)
            try:
                compiled = tpu_compile.compile_in_subprocess(
                    cfg, FLAGS.compile_for, FLAGS.compile_effort,
                    echo=lambda text: print(f"  {text}", flush=True))
            except tpu_compile.SetupError as e:
                commandline.fail(f"--compile_for: {e}")
            except tpu_compile.CompileError as e:
                print(f"error: --compile_for: {e}", file=sys.stderr)
                sys.exit(1)
        full_run = plan.describe(cfg, compiled)
        full_cfg = cfg
        cfg = plan.dry_run_config(cfg, str(home / "tfrecords" / "sample"),
                                  os.path.join(workdir, "images.zip"))
        if backend == "jax" and FLAGS.strategy == "cpu":
            cfg, reduced = plan.reduced_for_cpu(cfg)
            print(f"dry run on JAX's CPU devices: a reduced copy ({reduced}) of the config's "
                  "models trains; XLA:CPU would compile the full-size step for many minutes. "
                  "The full size is proven for the TPU by --compile_for (XLA:TPU).", flush=True)
    print(f"workdir: {os.path.abspath(workdir)}", flush=True)

    runtime = None
    try:
        cluster = clusters.from_settings(backend, FLAGS.num_processes, FLAGS.process_id,
                                         FLAGS.coordinator_address, FLAGS.coordinator_timeout,
                                         FLAGS.heartbeat_timeout)
        if cluster.multi and FLAGS.dry_run:
            raise clusters.ClusterError("--dry_run runs on one process: drop --num_processes "
                                        "(and TF_CONFIG)")
        if cluster.multi:
            print(f"this is {cluster.describe()}", flush=True)
        runtime = make_runtime(FLAGS.strategy, tpu=FLAGS.tpu, cpu_replicas=FLAGS.cpu_replicas,
                               cluster=cluster, run=_run_digest(cfg, backend, workdir))
        result = train(cfg, workdir, runtime, verbose="auto" if FLAGS.progress == "bar" else 2)
    except (ConfigError, DataError, InceptionWeightsError, StrategyError, SubmissionError,
            WorkdirError, clusters.ClusterError) as e:  # Bad input: said before any training.
        _leave(runtime)
        commandline.fail(str(e))
    except TrainingStopped as e:
        _leave(runtime)
        print(e, file=sys.stderr)
        sys.exit(e.exit_code)
    except TrainingDiverged as e:
        _leave(runtime)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(3)
    except Exception as e:  # A process of the run lost: one line naming it, else the traceback.
        lost = runtime.lost_processes(e) if runtime is not None else []
        if not lost:
            raise
        stop_for_lost(lost, runtime.processes, runtime.process_index)
    _leave(runtime)
    if result.stopped_by_budget:
        print(f"done within the time budget: {result.epochs_done} of {result.epochs_planned} "
              f"epochs, {result.steps_done} steps; generators exported to {result.export_dir}")
    else:
        print(f"done: {result.epochs_done} epochs; generators exported to {result.export_dir}")
    if FLAGS.dry_run:
        print(f"dry run: {result.steps_done} steps on the sample, export and zip in "
              f"{format_duration(time.monotonic() - started)}")
        print(full_run)
        if compiled:  # Beside the run's config.json (gs:// too), for a later look.
            import tensorflow as tf

            saved = os.path.join(workdir, f"compile_{FLAGS.compile_for}.json")
            with tf.io.gfile.GFile(saved, "w") as f:
                json.dump([report.as_dict() for report in compiled], f, indent=1)
            print(f"XLA:TPU's figures for {FLAGS.compile_for}: {saved}")
        if reduced is None:
            print(plan.memory(result.model, full_cfg))
        else:
            print(f"memory: not measured on the reduced copy ({reduced}); --compile_for gives "
                  "XLA:TPU's per-chip figures of the full size")


def _leave(runtime) -> None:
    if runtime is not None:
        runtime.leave()


def _run_digest(cfg, backend: str, workdir: str) -> str:
    """What every process of a run must agree on before starting: the flags and the config."""
    run = {"backend": backend, "strategy": FLAGS.strategy, "cpu_replicas": FLAGS.cpu_replicas,
           "workdir": workdir, "config": json.loads(cfg.to_json_best_effort())}
    return hashlib.sha256(json.dumps(run, sort_keys=True).encode()).hexdigest()
