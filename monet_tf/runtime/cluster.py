"""The processes of one run: how many, which one this is, and a check, before either engine
starts, that they agree on that and on the run.

A run on several hosts (a TPU pod slice, several GPU machines) or several processes on one host
has one process per host, each running the same command. Where they learn of each other:
- JAX: --num_processes, --process_id and --coordinator_address (host:port of process 0), or the
  variables Keras reads (KERAS_DISTRIBUTION_NUM_PROCESSES, KERAS_DISTRIBUTION_PROCESS_ID,
  KERAS_DISTRIBUTION_JOB_ADDRESSES) and JAX's JAX_COORDINATOR_ADDRESS; on a Cloud TPU pod
  slice nothing at all: JAX finds the hosts itself (TPU_WORKER_HOSTNAMES lists them).
- TensorFlow: TF_CONFIG, MultiWorkerMirroredStrategy's cluster; its first task is process 0.
`python -m monet_tf launch` sets both for N processes on this machine.

Bad set-ups would otherwise end in the engines' own timeouts and fatal log lines ("Deadline
Exceeded ... RegisterTask"). So first each process says who it is to process 0 on the
coordinator's port (`rendezvous`), and process 0 answers each with the first problem found: a
missing, duplicate or out-of-range process, another process count, another run (a digest of the
flags and config as given). Imports neither Keras, TensorFlow nor JAX.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import socket
import time

DEFAULT_TIMEOUT_S = 300.0  # JAX's own initialization_timeout.
DEFAULT_HEARTBEAT_S = 100.0  # JAX's own heartbeat_timeout_seconds.
_KERAS_ENV = ("KERAS_DISTRIBUTION_NUM_PROCESSES", "KERAS_DISTRIBUTION_PROCESS_ID",
              "KERAS_DISTRIBUTION_JOB_ADDRESSES")


class ClusterError(RuntimeError):
    """The processes of a run cannot form one; the message names the flag and the fix."""


@dataclasses.dataclass(frozen=True)
class Cluster:
    """This process's place in the run. `auto`: a Cloud TPU pod slice, found by JAX itself."""

    processes: int = 1
    index: int = 0
    coordinator: str = ""  # host:port of process 0 (JAX's coordinator, TF_CONFIG's first task)
    timeout: float = DEFAULT_TIMEOUT_S  # for every process to arrive
    heartbeat: float = DEFAULT_HEARTBEAT_S  # silence after which a process counts as lost
    auto: bool = False
    tf_config: str = ""  # TensorFlow: the TF_CONFIG the cluster came from

    @property
    def chief(self) -> bool:
        """Process 0 writes the run's files; the others compute with it."""
        return self.index == 0

    @property
    def multi(self) -> bool:
        return self.processes > 1 or self.auto

    def describe(self) -> str:
        if self.auto:
            return "the TPU pod slice's hosts (found by JAX)"
        return f"process {self.index} of {self.processes} (coordinator {self.coordinator})"


def _host_port(address: str, flag: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterError(f"{flag}={address!r}: expected host:port, e.g. 10.0.0.1:8476")
    return host.strip("[]"), int(port)


def _integer(value, flag: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ClusterError(f"{flag}={value!r}: expected a whole number") from None


def from_settings(backend: str, num_processes=None, process_id=None, coordinator_address="",
                  timeout: float = DEFAULT_TIMEOUT_S, heartbeat: float = DEFAULT_HEARTBEAT_S,
                  environ=None) -> Cluster:
    """The cluster the flags (None / "": not given) and the environment describe."""
    environ = os.environ if environ is None else environ
    if timeout <= 0:
        raise ClusterError(f"--coordinator_timeout={timeout:g}: must be more than 0 seconds")
    if heartbeat < 10:
        raise ClusterError(f"--heartbeat_timeout={heartbeat:g}: must be at least 10 seconds "
                           "(a lost process is named after a few seconds of silence)")
    if backend == "tensorflow":
        return _from_tf_config(num_processes, process_id, coordinator_address, timeout,
                               heartbeat, environ)
    count = _integer(num_processes, "--num_processes")
    index = _integer(process_id, "--process_id")
    addresses = environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES", "")
    if count is None:
        count = _integer(environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES"),
                         "KERAS_DISTRIBUTION_NUM_PROCESSES")
    if index is None:
        index = _integer(environ.get("KERAS_DISTRIBUTION_PROCESS_ID"),
                         "KERAS_DISTRIBUTION_PROCESS_ID")
    coordinator = (coordinator_address or addresses.split(",")[0]
                   or environ.get("JAX_COORDINATOR_ADDRESS", ""))
    if count is None and index is None and not coordinator:
        if "," in environ.get("TPU_WORKER_HOSTNAMES", ""):
            return Cluster(timeout=timeout, heartbeat=heartbeat, auto=True)
        return Cluster(timeout=timeout, heartbeat=heartbeat)
    if count is None and "," in addresses:
        count = len(addresses.split(","))
    if count is None or count < 1:
        raise ClusterError(f"--num_processes={count}: give the number of processes of the run "
                           "(the same on every process)")
    if count == 1 and not index:
        return Cluster(timeout=timeout, heartbeat=heartbeat)
    if index is None or not 0 <= index < count:
        raise ClusterError(f"--process_id={index}: give each of the --num_processes={count} "
                           f"processes its own id, 0 to {count - 1} (0 is the coordinator)")
    if not coordinator:
        raise ClusterError(f"--num_processes={count} needs --coordinator_address=HOST:PORT, "
                           "process 0's address, the same on every process")
    _host_port(coordinator, "--coordinator_address")
    if "," in addresses and len(addresses.split(",")) != count:
        raise ClusterError(f"KERAS_DISTRIBUTION_JOB_ADDRESSES names {len(addresses.split(','))} "
                           f"processes, --num_processes={count}: make them agree")
    return Cluster(count, index, coordinator, timeout, heartbeat)


def tf_task_process(cluster_spec: dict, job: str, task: int) -> int:
    """The process of TF_CONFIG's task `job` (chief or worker) `task`: the chiefs first, then the
    workers. `cluster_spec`: TF_CONFIG's "cluster"."""
    return task if job == "chief" else len(cluster_spec.get("chief", [])) + task


def _from_tf_config(num_processes, process_id, coordinator_address, timeout, heartbeat,
                    environ) -> Cluster:
    text = environ.get("TF_CONFIG", "")
    given = [f"--{name}" for name, value in (("num_processes", num_processes),
                                              ("process_id", process_id),
                                              ("coordinator_address", coordinator_address))
             if value not in (None, "")]
    if not text:
        if given:
            raise ClusterError(f"{given[0]}: on TensorFlow the processes are the workers that "
                               "TF_CONFIG names (README, 'More than one machine'), or start them "
                               "with python -m monet_tf launch")
        return Cluster(timeout=timeout, heartbeat=heartbeat)
    try:
        spec = json.loads(text)
        tasks = [*spec.get("cluster", {}).get("chief", []),
                 *spec.get("cluster", {}).get("worker", [])]
        kind, position = spec["task"]["type"], int(spec["task"]["index"])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ClusterError(f"TF_CONFIG is not a cluster and task ({e}): expected "
                           '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": '
                           '"worker", "index": i}}') from None
    chiefs = len(spec["cluster"].get("chief", []))
    if kind not in ("chief", "worker") or not 0 <= position < (chiefs if kind == "chief"
                                                               else len(tasks) - chiefs):
        raise ClusterError(f"TF_CONFIG task {kind} {position} is not in its cluster "
                           f"({len(tasks)} tasks): give each process its own task index")
    index = tf_task_process(spec["cluster"], kind, position)
    for value, flag, expected in ((num_processes, "--num_processes", len(tasks)),
                                  (process_id, "--process_id", index)):
        if value not in (None, "") and _integer(value, flag) != expected:
            raise ClusterError(f"{flag}={value} but TF_CONFIG says {expected}: drop the flag "
                               "or make them agree")
    for address in tasks:
        _host_port(address, "TF_CONFIG")
    return Cluster(len(tasks), index, tasks[0], timeout, heartbeat, tf_config=text)


def from_environment(backend: str, environ=None) -> Cluster:
    """The cluster the environment alone describes (library use, `monet_tf.runtime.launch`'s
    children)."""
    return from_settings(backend, environ=environ)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def bind_address(coordinator: str) -> str:
    """Where process 0 listens: the coordinator's own address when it is a loopback one (nothing
    leaves the machine), else every interface on its port, as JAX does by default."""
    host, port = _host_port(coordinator, "--coordinator_address")
    return f"{host}:{port}" if is_loopback(host) else f"[::]:{port}"


def _send(connection: socket.socket, message: dict) -> None:
    connection.sendall(json.dumps(message).encode() + b"\n")


def _receive(connection: socket.socket, deadline: float) -> dict | None:
    data = b""
    while not data.endswith(b"\n"):
        connection.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = connection.recv(65536)
        except (socket.timeout, OSError):
            return None
        if not chunk:
            return None
        data += chunk
    try:
        return json.loads(data)
    except ValueError:
        return None


def rendezvous(cluster: Cluster, run: str = "") -> None:
    """Every process of `cluster` meets process 0 on the coordinator's port and checks that they
    are `cluster.processes` distinct processes of the same `run` (a digest of the flags and the
    config as given). Raises ClusterError with the first problem, on every process, within
    `cluster.timeout` seconds. A TPU pod slice (auto) has no coordinator of ours: JAX's checks."""
    if not cluster.multi or cluster.auto or cluster in _MET:
        return
    host, port = _host_port(cluster.coordinator, "--coordinator_address")
    deadline = time.monotonic() + cluster.timeout
    hello = {"index": cluster.index, "processes": cluster.processes, "run": run}
    if cluster.chief:
        _meet_as_coordinator(cluster, host, port, hello, deadline)
    else:
        _meet_as_process(cluster, host, port, hello, deadline)
    _MET.add(cluster)


_MET: set = set()  # Once per process: afterwards the engine's own service holds the port.


def _meet_as_coordinator(cluster, host, port, hello, deadline) -> None:
    server = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        server.bind((host if is_loopback(host) else "", port))
    except OSError as e:
        server.close()
        raise ClusterError(f"--coordinator_address={cluster.coordinator}: process 0 cannot "
                           f"listen there ({e.strerror}): is another process 0 running, or is "
                           "the address not this host's? Give each process its own "
                           "--process_id") from None
    server.listen(cluster.processes)
    arrived: dict[int, tuple[socket.socket, dict]] = {}
    problems: list[str] = []
    heard = 0
    try:
        while heard < cluster.processes - 1 and time.monotonic() < deadline:
            server.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                connection, _ = server.accept()
            except (socket.timeout, OSError):
                continue
            other = _receive(connection, deadline)
            if other is None:
                connection.close()
                continue
            heard += 1
            index = other.get("index")
            if other.get("processes") != cluster.processes:
                problems.append(f"process {index} was started with --num_processes="
                                f"{other.get('processes')}, process 0 with {cluster.processes}: "
                                "give every process the same count")
            elif not isinstance(index, int) or not 0 < index < cluster.processes or (
                    index in arrived):
                problems.append(f"two processes say --process_id={index}: give each of the "
                                f"{cluster.processes} its own id, 0 to {cluster.processes - 1}")
            elif other.get("run") != hello["run"]:
                problems.append(f"process {index} runs another config or other flags than "
                                "process 0: run the same command, config file and flags on "
                                "every process")
            if problems:  # Tell those still starting too, for a few seconds, then stop.
                _send(connection, {"error": problems[0]})
                connection.close()
                deadline = min(deadline, time.monotonic() + 5.0)
                continue
            arrived[index] = (connection, other)
        missing = sorted(set(range(1, cluster.processes)) - set(arrived))
        if missing and not problems:
            problems.append(
                f"process(es) {', '.join(map(str, missing))} of {cluster.processes} did not reach "
                f"process 0 at {cluster.coordinator} within --coordinator_timeout="
                f"{cluster.timeout:g}s: start every process (README, 'More than one machine'), "
                "or give the count that runs")
        for connection, _ in arrived.values():
            _send(connection, {"error": problems[0]} if problems else {"ok": True})
        for connection, _ in arrived.values():  # The other side closes first (its TIME_WAIT).
            _receive(connection, time.monotonic() + 5.0)
            connection.close()
    finally:
        server.close()
    if problems:
        raise ClusterError(problems[0])


def _meet_as_process(cluster, host, port, hello, deadline) -> None:
    while True:
        try:
            connection = socket.create_connection(
                (host, port), timeout=max(0.05, min(5.0, deadline - time.monotonic())))
            break
        except OSError:
            if time.monotonic() >= deadline:
                raise ClusterError(
                    f"--coordinator_address={cluster.coordinator}: no process 0 answered within "
                    f"--coordinator_timeout={cluster.timeout:g}s: start process 0 "
                    "(--process_id=0) with the same address, or fix the address") from None
            time.sleep(0.2)
    with connection:
        _send(connection, hello)
        answer = _receive(connection, deadline + 5.0)
    if answer is None:
        raise ClusterError(f"--coordinator_address={cluster.coordinator}: process 0 did not "
                           f"answer within --coordinator_timeout={cluster.timeout:g}s")
    if "error" in answer:
        raise ClusterError(answer["error"])
