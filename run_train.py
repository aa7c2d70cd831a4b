"""Trains photo<->Monet CycleGAN generators and exports them.

With no flags: the small demo config on the bundled sample, on CPU, in a few minutes.

  python run_train.py                                   # configs/demo.py, tfrecords/sample
  python run_train.py --strategy=tpu --config=configs/kaggle_tpu.py   # JAX on Kaggle's TPU VMs
  python run_train.py --backend=jax --strategy=cpu --cpu_replicas=2  # JAX over 2 host devices
  python run_train.py --strategy=gpu --config=configs/gpu.py --data_dir=/path/to/gan-getting-started
  python run_train.py --config=configs/demo.py --config.train.epochs=3 --workdir=runs/try
  python run_train.py --verbosity=0                     # with TensorFlow's and XLA's INFO logs
  python run_train.py --config=configs/kaggle_tpu.py --dry_run   # a few steps, and the full plan
  # one of N processes (JAX; on TensorFlow, TF_CONFIG names them); python -m monet_tf.launch
  # starts N on this machine
  python run_train.py --backend=jax --num_processes=2 --process_id=0 --coordinator_address=H:P

Rerunning the same command with the same --workdir resumes from the latest checkpoint.
"""

import hashlib
import json
import os
import pathlib
import sys
import tempfile
import time

from absl import app, flags

from monet_tf import cli
from monet_tf import cluster as clusters
from monet_tf.backend import BACKEND_HELP, BackendError, select_backend
from monet_tf.console import quiet

REPO = pathlib.Path(__file__).resolve().parent

_CONFIG = cli.define_config(
    "config", str(REPO / "configs" / "demo.py"), "Experiment config file (configs/*.py).",
    lock_config=True,
)
_STRATEGY = flags.DEFINE_enum("strategy", "cpu", ["cpu", "gpu", "tpu"], "Where to train.")
_BACKEND = flags.DEFINE_string("backend", "auto", BACKEND_HELP)
_TPU = flags.DEFINE_string("tpu", "local", "TPU name for --strategy=tpu ('local' on a TPU VM).")
_CPU_REPLICAS = flags.DEFINE_integer(
    "cpu_replicas", 1, "With --strategy=cpu: replicas over that many logical CPU devices "
    "(host devices on JAX).")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Kaggle-layout data folder (overrides config.data.data_dir).")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Output folder (checkpoints, logs, samples, export). "
    "Default: runs/<config file name>.")
_SUBMISSION = flags.DEFINE_string(
    "submission", None, "Write the Kaggle images.zip here after training (config: "
    "submission.path; the Kaggle configs write /kaggle/working/images.zip inside a notebook).")
_DRY_RUN = flags.DEFINE_bool(
    "dry_run", False, "Build the config's models, train a few steps on the bundled sample, write "
    "a small zip, and print the time and memory the full run would need (cfg.estimate).")
_COMPILE_FOR = flags.DEFINE_string(
    "compile_for", "", "With --dry_run: also compile the config's programs for this TPU slice "
    "(v5e-8, v6e-1, ...) with XLA:TPU (needs libtpu, no TPU) and plan from its FLOPs and memory.")
_COMPILE_EFFORT = flags.DEFINE_enum(
    "compile_effort", "default", ["default", "fast"], "With --compile_for: XLA's optimisation "
    "effort; fast takes about half the time, its memory figures a less optimised program's.")
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "Processes of a multi-host run, one per host, the same on each "
    "(JAX; default KERAS_DISTRIBUTION_NUM_PROCESSES; TensorFlow: the workers of TF_CONFIG).")
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "This process's index, 0 to --num_processes - 1; 0 writes the files "
    "(default KERAS_DISTRIBUTION_PROCESS_ID).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0, the same on every process (default "
    "the first of KERAS_DISTRIBUTION_JOB_ADDRESSES, or JAX_COORDINATOR_ADDRESS).")
_COORDINATOR_TIMEOUT = flags.DEFINE_float(
    "coordinator_timeout", clusters.DEFAULT_TIMEOUT_S,
    "Seconds every process waits for the others to start before giving up.")
_HEARTBEAT_TIMEOUT = flags.DEFINE_float(
    "heartbeat_timeout", clusters.DEFAULT_HEARTBEAT_S,
    "Seconds of silence after which a process of the run counts as lost and the others stop.")
_WANDB = flags.DEFINE_bool("wandb", False, "Log to Weights & Biases (respects WANDB_MODE).")
_WANDB_PROJECT = flags.DEFINE_string("wandb_project", None, "wandb project.")
_WANDB_ENTITY = flags.DEFINE_string("wandb_entity", None, "wandb entity (team or user).")
_WANDB_RUN_NAME = flags.DEFINE_string("wandb_run_name", None, "wandb run name.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    started = time.monotonic()
    # TF/XLA INFO lines and known-harmless errors stay off the console; --verbosity=0 shows all.
    quiet(flags.FLAGS["verbosity"].present, flags.FLAGS.verbosity)
    try:  # Before anything imports Keras: it reads its backend once.
        backend = select_backend(_BACKEND.value, _STRATEGY.value, _CPU_REPLICAS.value)
    except BackendError as e:
        cli.fail(str(e))
    from monet_tf.config_check import ConfigError, check

    cfg = _CONFIG.value
    try:  # Every field, before any data is read or model built.
        check(cfg, backend)
    except ConfigError as e:
        cli.fail(str(e))
    if _COMPILE_FOR.value:
        from monet_tf import tpus

        problem = None if _DRY_RUN.value else (
            "--compile_for needs --dry_run (or run python -m monet_tf.tpu_compile)")
        try:
            tpus.topology(_COMPILE_FOR.value)
        except tpus.UnknownTopology as e:
            problem = f"--compile_for={_COMPILE_FOR.value}: {e}"
        if problem:
            cli.fail(problem)
    from monet_tf.checkpoints import WorkdirError
    from monet_tf.data import DataError
    from monet_tf.data.sources import KAGGLE_INPUT
    from monet_tf.inception import InceptionWeightsError
    from monet_tf.submission import SubmissionError
    from monet_tf.runtime import make_runtime, stop_for_lost
    from monet_tf.strategy import StrategyError
    from monet_tf.train import TrainingDiverged, TrainingStopped, format_duration, train

    with cfg.unlocked():
        if _DATA_DIR.value is not None:
            cfg.data.data_dir = _DATA_DIR.value
        elif not (cfg.data.data_dir or cfg.data.monet or cfg.data.photo
                  or os.path.isdir(KAGGLE_INPUT)):
            # The sample beside this script: also there when monet_tf is an installed wheel
            # (the offline Kaggle bundle), where the package has no tfrecords/ of its own.
            cfg.data.data_dir = str(REPO / "tfrecords" / "sample")
        cfg.wandb.enabled = cfg.wandb.enabled or _WANDB.value
        for field, flag in (("project", _WANDB_PROJECT), ("entity", _WANDB_ENTITY),
                            ("run_name", _WANDB_RUN_NAME)):
            if flag.value is not None:
                cfg.wandb[field] = flag.value
        if _SUBMISSION.value is not None:
            cfg.submission.path = _SUBMISSION.value
    config_path = flags.FLAGS["config"].config_filename
    workdir = _WORKDIR.value or os.path.join("runs", pathlib.Path(config_path).stem)
    reduced = None
    if _DRY_RUN.value:
        from monet_tf import plan, tpu_compile

        workdir = _WORKDIR.value or tempfile.mkdtemp(prefix="monet_tf_dry_run_")
        compiled = None
        if _COMPILE_FOR.value:
            print(f"compiling the full config for {_COMPILE_FOR.value} with XLA:TPU (no TPU "
                  "needed; minutes at full size) ...", flush=True)
            try:
                compiled = plan.compile_for(cfg, _COMPILE_FOR.value, _COMPILE_EFFORT.value,
                                            echo=lambda text: print(f"  {text}", flush=True))
            except tpu_compile.SetupError as e:
                cli.fail(f"--compile_for: {e}")
            except tpu_compile.CompileError as e:
                print(f"error: --compile_for: {e}", file=sys.stderr)
                sys.exit(1)
        full_run = plan.describe(cfg, compiled)
        full_cfg = cfg
        cfg = plan.dry_run_config(cfg, str(REPO / "tfrecords" / "sample"),
                                  os.path.join(workdir, "images.zip"))
        if backend == "jax" and _STRATEGY.value == "cpu":
            cfg, reduced = plan.reduced_for_cpu(cfg)
            print(f"dry run on JAX's CPU devices: a reduced copy ({reduced}) of the config's "
                  "models trains; XLA:CPU would compile the full-size step for many minutes. "
                  "The full size is proven for the TPU by --compile_for (XLA:TPU).", flush=True)
    print(f"workdir: {os.path.abspath(workdir)}", flush=True)

    runtime = None
    try:
        cluster = clusters.from_settings(backend, _NUM_PROCESSES.value, _PROCESS_ID.value,
                                         _COORDINATOR.value, _COORDINATOR_TIMEOUT.value,
                                         _HEARTBEAT_TIMEOUT.value)
        if cluster.multi and _DRY_RUN.value:
            raise clusters.ClusterError("--dry_run runs on one process: drop --num_processes "
                                        "(and TF_CONFIG)")
        if cluster.multi:
            print(f"this is {cluster.describe()}", flush=True)
        runtime = make_runtime(_STRATEGY.value, tpu=_TPU.value, cpu_replicas=_CPU_REPLICAS.value,
                               cluster=cluster, run=_run_digest(cfg, backend, workdir))
        result = train(cfg, workdir, runtime)
    except (ConfigError, DataError, InceptionWeightsError, StrategyError, SubmissionError,
            WorkdirError, clusters.ClusterError) as e:  # Bad input: said before any training.
        _leave(runtime)
        cli.fail(str(e))
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
    if _DRY_RUN.value:
        print(f"dry run: {result.steps_done} steps on the sample, export and zip in "
              f"{format_duration(time.monotonic() - started)}")
        print(full_run)
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
    run = {"backend": backend, "strategy": _STRATEGY.value, "cpu_replicas": _CPU_REPLICAS.value,
           "workdir": workdir, "config": json.loads(cfg.to_json_best_effort())}
    return hashlib.sha256(json.dumps(run, sort_keys=True).encode()).hexdigest()


if __name__ == "__main__":
    cli.run(main)
