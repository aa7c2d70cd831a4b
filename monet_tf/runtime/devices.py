"""Where and how the training step runs, on either Keras backend: devices, precision, XLA.

TensorFlow: a tf.distribute strategy (`monet_tf.runtime.tf_strategy`). JAX: all devices of the asked
kind under `keras.distribution.DataParallel` (global batch = per-device batch x devices), one SPMD
program that XLA always compiles. Call `monet_tf.runtime.backend.select_backend` before this module
is imported; Keras fixes its backend on import.

Several processes (`monet_tf.runtime.cluster`): MultiWorkerMirroredStrategy on TensorFlow; on JAX
the multi-controller runtime (`jax.distributed`, gloo collectives on CPUs) with one mesh over every
process's devices. Each process feeds its own part of every global batch (`host_batches`);
`exchange` and `any_process` keep the processes' decisions the same.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import re
import sys
import threading
import time
from typing import Callable

import keras
import numpy as np

from monet_tf.config import PRECISIONS as POLICIES
from monet_tf.runtime import cluster as clusters
from monet_tf.runtime import tf_strategy as tf_strategies
from monet_tf.runtime.precision import auto_precision
from monet_tf.runtime.tf_strategy import StrategyError

# How long a process waits for the others at an exchange: they may be validating data or
# exporting for process 0; a process that died is found by its heartbeats long before.
EXCHANGE_TIMEOUT_S = 1800.0
_BEAT_S = 1.0  # A JAX process's "alive" counter ticks this often.
LOST_EXIT_CODE = 4


@dataclasses.dataclass
class Runtime:
    """The backend and devices of a run. `replicas` divides the global batch: TF replicas in
    sync, or JAX devices (over all processes)."""

    backend: str
    strategy_name: str
    devices: list[str]
    replicas: int
    tf_strategy: object | None = None  # tf.distribute.Strategy on TensorFlow
    distribution: object | None = None  # keras.distribution.DataParallel on JAX, >1 device
    device_kind: str = "cpu"
    compute_capability: float | None = None  # GPU only
    precision_probe: object | None = None  # What `auto` measured on a CPU (cpu_probe's result).
    processes: int = 1
    process_index: int = 0
    cluster: clusters.Cluster = dataclasses.field(default_factory=clusters.Cluster)
    _exchanges: int = 0

    @property
    def chief(self) -> bool:
        """Process 0: the one that writes checkpoints, logs, exports and the submission."""
        return self.process_index == 0

    def exchange(self, name: str, text: str) -> list[str]:
        """Every process's `text`, in process order, once all have given theirs (a barrier that
        carries a value). Every process must call it, in the same order."""
        if self.processes == 1:
            return [text]
        self._exchanges += 1
        key = f"monet_tf/{self._exchanges}/{name}"
        if self.backend == "tensorflow":
            return tf_strategies.exchange(key, self.process_index, self.processes, text,
                                          EXCHANGE_TIMEOUT_S)
        client = _jax_client()
        client.key_value_set(f"{key}/{self.process_index}", text)
        return [client.blocking_key_value_get(f"{key}/{k}", int(EXCHANGE_TIMEOUT_S * 1000))
                for k in range(self.processes)]

    def any_process(self, flag: bool) -> bool:
        """True on every process when `flag` is True on any: a stop that one process asks for
        (a signal, its clock) is taken by all at the same step."""
        return self.any_process_each((flag,))[0]

    def any_process_each(self, flags: tuple[bool, ...]) -> tuple[bool, ...]:
        """any_process of several flags in one collective (the stops a step checks)."""
        if self.processes == 1:
            return tuple(bool(flag) for flag in flags)
        if self.backend == "tensorflow":
            return tf_strategies.any_replica(self.tf_strategy, flags)
        from jax.experimental import multihost_utils

        gathered = multihost_utils.process_allgather(np.array(flags, np.int32))  # [processes, n]
        return tuple(bool(v) for v in np.any(np.asarray(gathered).reshape(-1, len(flags)), axis=0))

    def lost_processes(self, error: BaseException) -> list[int]:
        """The processes whose loss (killed, crashed, preempted) `error` comes from; [] when it
        is not that. On JAX the watch (`_watch`) names them and stops this process itself, so
        this waits for it as long as it may take."""
        if self.processes == 1:
            return []
        if self.backend == "tensorflow":
            index = tf_strategies.lost_task(error, self.cluster)
            return [] if index is None else [index]
        if _PEER_FAILURE.search(str(error)):
            time.sleep(self.cluster.heartbeat / 2 + 2 * _BEAT_S)
        return []

    def leave(self) -> None:
        """This process is done with the others (finished, or stopping on purpose): they no
        longer count it as lost when it goes quiet."""
        if self.processes > 1 and self.backend == "jax":
            _leave(self.process_index)

    def host_batches(self, make):
        """What `fit` takes to train on this process's own part of every global batch, given
        `make()`, the tf.data pipeline of that part: the pipeline itself on JAX (Keras assembles
        the global batch from every process's part) and on one process; one pipeline per worker
        on several TensorFlow workers."""
        if self.tf_strategy is None or self.processes == 1:
            return make()
        local = self.replicas // self.processes

        def per_worker(context):
            data = make()
            if local > 1:  # Consecutive per-replica batches go to this worker's replicas.
                data = data.rebatch(data.element_spec[0].shape[0] // local, drop_remainder=True)
            return data

        return self.tf_strategy.distribute_datasets_from_function(per_worker)

    def scope(self):
        if self.tf_strategy is not None:
            return self.tf_strategy.scope()
        return contextlib.nullcontext()

    def precision(self, policy: str, cpu_probe: Callable[[str], object] | None = None) -> str:
        """train.mixed_precision -> the Keras dtype policy, set globally (before building), on
        either backend; `auto` is runtime.precision's rule for this runtime's devices.

        `auto` on a CPU takes what `cpu_probe(backend)` measured (models.precision_probe's
        cpu_precision for the config's network: it times the model's layers in float32 and
        bfloat16 on this backend, once per machine) and prints it; without a probe, float32.
        Under mixed_float16 (TensorFlow) the model's compile turns on dynamic loss scaling; its
        networks end in float32 layers and its losses are computed in float32."""
        if policy not in POLICIES:
            raise StrategyError(f"mixed_precision={policy!r} is not one of {', '.join(POLICIES)}")
        if self.backend != "tensorflow" and policy == "mixed_float16":
            raise StrategyError(
                "--config.train.mixed_precision=mixed_float16 needs loss scaling, which monet_tf "
                "does on the TensorFlow backend only; on JAX use mixed_bfloat16 or float32")
        if policy == "auto":
            cpu_bfloat16 = False
            if self.device_kind == "cpu" and cpu_probe is not None:
                self.precision_probe = cpu_probe(self.backend)
                print(self.precision_probe.describe(), flush=True)
                cpu_bfloat16 = self.precision_probe.choice == "mixed_bfloat16"
            # No loss scaling on JAX: float32 on 7.x GPUs.
            policy = auto_precision(self.device_kind, self.compute_capability, cpu_bfloat16,
                                    loss_scaling=self.backend == "tensorflow")
        keras.config.set_dtype_policy(policy)
        return policy

    def xla(self, setting) -> tuple[bool, str]:
        """(jit_compile, a note for the console) for train.jit_compile: auto | true | false.
        On JAX the step is always one XLA program unless `false` (op by op, for debugging)."""
        if self.backend == "tensorflow":
            return tf_strategies.xla_choice(setting, tf_strategies.kind_of(self.tf_strategy),
                                            self.device_kind)
        value = str(setting).lower()
        if value not in tf_strategies.JIT_SETTINGS:
            raise StrategyError(
                f"--config.train.jit_compile={setting!r} is not one of "
                f"{', '.join(tf_strategies.JIT_SETTINGS)}")
        on = value != "false"
        return on, f"XLA {'on' if on else 'off'}"

    def use_xla(self, setting) -> bool:
        return self.xla(setting)[0]

    def describe(self) -> str:
        shown = ", ".join(self.devices[:8]) + (" ..." if len(self.devices) > 8 else "")
        over = (f" over {self.processes} processes (this is process {self.process_index})"
                if self.processes > 1 else "")
        return (f"backend: {self.backend}; strategy {self.strategy_name}: {self.replicas} "
                f"replica(s) on {len(self.devices)} {self.device_kind} device(s) [{shown}]"
                f"{over}")

    def as_config(self) -> dict:
        """What config.json records under `runtime` (devices: process 0's, on TensorFlow)."""
        recorded = {"backend": self.backend, "strategy": self.strategy_name,
                    "device_kind": self.device_kind, "devices": list(self.devices),
                    "replicas": self.replicas, "processes": self.processes}
        if self.precision_probe is not None:
            recorded["precision_probe"] = self.precision_probe.as_config()
        return recorded


def make_runtime(strategy: str = "cpu", tpu: str = "local", cpu_replicas: int = 1,
                 cluster: clusters.Cluster | None = None, run: str = "") -> Runtime:
    """The devices for --strategy on the backend Keras was imported with, over the processes of
    `cluster` (by default, those the environment names). With several, they first meet and
    check that they are one run of `run` (monet_tf.runtime.cluster.rendezvous: ClusterError
    if not)."""
    if strategy not in tf_strategies.STRATEGIES:
        raise StrategyError(
            f"--strategy={strategy!r} is not one of {', '.join(tf_strategies.STRATEGIES)}")
    if cpu_replicas < 1:
        raise StrategyError(f"--cpu_replicas={cpu_replicas} must be >= 1")
    backend = keras.backend.backend()
    if backend not in ("jax", "tensorflow"):
        raise StrategyError(f"KERAS_BACKEND={backend!r}: monet_tf trains on jax or tensorflow")
    if cluster is None:
        cluster = clusters.from_environment(backend)
    clusters.rendezvous(cluster, run)
    if backend == "tensorflow":
        return from_tf_strategy(tf_strategies.get_strategy(strategy, tpu, cpu_replicas, cluster),
                                strategy, cluster)
    return _jax_runtime(strategy, cpu_replicas, cluster)


def from_tf_strategy(strategy, name: str | None = None,
                     cluster: clusters.Cluster | None = None) -> Runtime:
    try:
        devices = list(strategy.extended.worker_devices)
    except RuntimeError:  # The default strategy: this host's first device.
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        devices = [(gpus or tf.config.list_logical_devices("CPU"))[0].name]
    kind = "tpu" if "TPU" in type(strategy).__name__.upper() else (
        "gpu" if any("GPU" in d.upper() for d in devices) else "cpu")
    capability = tf_strategies.gpu_compute_capability() if kind == "gpu" else None
    if cluster is None:
        cluster = (clusters.from_environment("tensorflow")
                   if tf_strategies.kind_of(strategy) == "multi_worker" else clusters.Cluster())
    return Runtime("tensorflow", name or kind, devices, strategy.num_replicas_in_sync,
                   tf_strategy=strategy, device_kind=kind, compute_capability=capability,
                   processes=cluster.processes, process_index=cluster.index, cluster=cluster)


def current() -> Runtime:
    """The runtime when a caller names none: TF's current strategy, or JAX's default devices."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return from_tf_strategy(tf.distribute.get_strategy())
    import jax

    distribution = keras.distribution.distribution()
    devices = (list(distribution.device_mesh.devices.flatten()) if distribution is not None
               else jax.devices()[:1])
    return Runtime("jax", devices[0].platform, [str(d) for d in devices], len(devices),
                   distribution=distribution, device_kind=devices[0].platform,
                   processes=jax.process_count(), process_index=jax.process_index())


def _hide_accelerators_from_tensorflow() -> None:
    """On JAX, TensorFlow only feeds data (tf.data) and must not take GPU memory JAX needs."""
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TensorFlow already initialised its devices.
        pass


def _jax_client():
    from jax._src import distributed

    return distributed.global_state.client


def _start_jax_processes(cluster: clusters.Cluster, strategy: str) -> None:
    """jax.distributed over the cluster's processes (gloo collectives between CPU processes),
    with its timeouts, and this process's "alive" counter (see `lost_processes`)."""
    import jax

    if not cluster.multi or jax.distributed.is_initialized():
        return
    if strategy == "cpu":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    timeouts = {"initialization_timeout": int(cluster.timeout),
                "heartbeat_timeout_seconds": int(cluster.heartbeat)}
    if cluster.auto:  # A Cloud TPU pod slice: JAX reads the hosts from the TPU metadata.
        jax.distributed.initialize(**timeouts)
    else:
        jax.distributed.initialize(
            coordinator_address=cluster.coordinator, num_processes=cluster.processes,
            process_id=cluster.index,
            coordinator_bind_address=clusters.bind_address(cluster.coordinator), **timeouts)
    watch = threading.Thread(target=_watch, args=(jax.process_index(), jax.process_count(),
                                                  cluster.heartbeat / 2),
                             daemon=True, name="monet_tf_watch")
    watch.start()
    _WATCH.append(watch)
    atexit.register(_leave, jax.process_index())


def _leave(index: int) -> None:
    """Ends the watch, waiting for its current call into the store to return, then marks this
    process done there. Runtime.leave calls it, and so does the interpreter's exit before it
    finalises: a daemon thread that came back from jaxlib's C++ (which had released the GIL)
    during finalisation was ended by pthread_exit, whose unwinding through jaxlib's frames
    aborted the process ("terminate called after throwing an instance of ''", "FATAL:
    exception not rethrown") after the run's work was done: 3 exits in 4 of two processes."""
    if _LEFT.is_set() and not _WATCH:
        return  # Left already.
    _LEFT.set()
    for watch in _WATCH:
        if watch is not threading.current_thread():
            watch.join(timeout=30)
    _WATCH.clear()
    try:
        _jax_client().key_value_set(f"monet_tf/done/{index}", "1", allow_overwrite=True)
    except Exception:  # noqa: BLE001 - process 0 already gone: nobody to tell
        pass


def stop_for_lost(lost: list[int], processes: int, index: int) -> None:
    """One line naming the lost processes, then exit LOST_EXIT_CODE at once: an orderly exit
    would wait for them in the engines' shutdown (JAX aborts after its heartbeat timeout)."""
    print(f"error: lost process {', '.join(map(str, lost))} of {processes} (killed, crashed or "
          f"preempted: its own log says why), so process {index} stops too. Restart every "
          "process with the same command to resume from the last checkpoint.",
          file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(LOST_EXIT_CODE)


def _watch(index: int, processes: int, silence: float) -> None:
    """Ticks this process's "alive" counter in the coordinator's key-value store every _BEAT_S
    and watches the others': one whose counter stands still for `silence` seconds (half of
    JAX's heartbeat timeout, so this comes first) is lost, and so is process 0 when the store
    it holds no longer answers. Then this process stops with a line naming them, whatever it
    was doing: in a collective, writing for the run, or waiting for the lost one."""
    client = _jax_client()
    others = [k for k in range(processes) if k != index]
    seen: dict[int, str | None] = {}
    moved = {k: time.monotonic() for k in others}
    while not _LEFT.is_set():
        now = time.monotonic()
        try:
            client.key_value_increment(f"monet_tf/alive/{index}", 1)
            for k in others:
                if _key(client, f"monet_tf/done/{k}") is not None:
                    moved[k] = now
                    continue
                value = _key(client, f"monet_tf/alive/{k}")
                if value != seen.get(k):
                    seen[k], moved[k] = value, now
            lost = [k for k in others if now - moved[k] > silence]
        except Exception:  # noqa: BLE001 - jaxlib's own error types: the store is gone...
            lost = [0]
            if _LEFT.wait(2 * _BEAT_S):  # ...unless because the run ended and so does this.
                return
        if lost:
            stop_for_lost(lost, processes, index)
        _LEFT.wait(_BEAT_S)


_LEFT = threading.Event()  # Set when this process leaves the run (Runtime.leave).
_WATCH: list[threading.Thread] = []  # The watch while it runs.
# What a collective or the coordination service raise when a process of the run is gone.
_PEER_FAILURE = re.compile(r"Gloo|UNAVAILABLE|DEADLINE_EXCEEDED|Connection (reset|closed)|"
                           r"heartbeat", re.I)


def _key(client, key: str) -> str | None:
    try:
        return client.key_value_try_get(key)
    except Exception as e:  # noqa: BLE001 - NOT_FOUND comes as a generic jaxlib error
        if "NOT_FOUND" in str(e) or "not found" in str(e).lower():
            return None
        raise


def _jax_runtime(strategy: str, cpu_replicas: int, cluster: clusters.Cluster) -> Runtime:
    import jax

    from monet_tf.runtime.jax_compat import skip_executable_layouts

    _hide_accelerators_from_tensorflow()
    if strategy == "tpu" and skip_executable_layouts():
        print(f"jax {jax.__version__} < 0.8: compiled programs are not asked for their layouts "
              "(monet_tf/jax_compat.py says why)", flush=True)
    _start_jax_processes(cluster, strategy)
    try:
        devices = jax.devices(strategy)
    except RuntimeError as err:
        raise StrategyError(
            f"--strategy={strategy} --backend=jax but JAX sees no {strategy.upper()} ({err}). "
            + ("Install jax[tpu] on a TPU VM" if strategy == "tpu" else
               "Install jax[cuda12] on a GPU machine" if strategy == "gpu" else "")
            + ", or use --strategy=cpu") from None
    if strategy == "cpu":
        local = [d for d in devices if d.process_index == jax.process_index()]
        if len(local) < cpu_replicas:
            raise StrategyError(
                f"--cpu_replicas={cpu_replicas} needs {cpu_replicas} JAX host devices but JAX "
                f"started with {len(local)}; pass the flag to run_train.py (it sets XLA_FLAGS="
                f"--xla_force_host_platform_device_count before JAX starts)")
        if jax.process_count() == 1:
            devices = devices[:cpu_replicas]
    distribution = None
    if len(devices) > 1:
        # Each process feeds its own part of the global batch (host_batches), so Keras must not
        # cut each process's batches once more.
        distribution = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
        keras.distribution.set_distribution(distribution)
    capability = None
    if strategy == "gpu":
        try:
            capability = float(getattr(devices[0], "compute_capability", 0.0))
        except (TypeError, ValueError):
            capability = 0.0
    return Runtime("jax", strategy, [str(d) for d in devices], len(devices),
                   distribution=distribution, device_kind=strategy,
                   compute_capability=capability, processes=jax.process_count(),
                   process_index=jax.process_index(), cluster=cluster)
