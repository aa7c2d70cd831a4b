"""Starts the N processes of one run on this machine, as N hosts would each start one:

  python -m monet_tf launch --num_processes=2 -- python run_train.py --backend=jax --strategy=cpu

Each process gets what both backends read for its place in the run, with ports on 127.0.0.1
that are free at start: KERAS_DISTRIBUTION_JOB_ADDRESSES, _NUM_PROCESSES and _PROCESS_ID (JAX;
the first address is the coordinator) and TF_CONFIG (TensorFlow's workers). Their output comes
through line by line, prefixed with "[process i] ". SIGINT and SIGTERM go to every process (so
Ctrl-C stops the run after the current step, saved, as on one process); the processes get
SIGTERM if the launcher itself dies. Exits with the first non-zero exit code of a process, else 0.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading

from monet_tf.runtime import commandline

LOOPBACK = "127.0.0.1"


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports on the loopback address that nothing listens on now."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((LOOPBACK, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def process_environments(count: int, ports: list[int], environ=None) -> list[dict]:
    """The environment of each of `count` processes of a run on this machine."""
    environ = dict(os.environ if environ is None else environ)
    addresses = [f"{LOOPBACK}:{port}" for port in ports]
    out = []
    for index in range(count):
        env = dict(environ)
        env.update(KERAS_DISTRIBUTION_JOB_ADDRESSES=",".join(addresses),
                   KERAS_DISTRIBUTION_NUM_PROCESSES=str(count),
                   KERAS_DISTRIBUTION_PROCESS_ID=str(index),
                   TF_CONFIG=json.dumps({"cluster": {"worker": addresses},
                                         "task": {"type": "worker", "index": index}}))
        out.append(env)
    return out


def _die_with_parent() -> None:
    """In the child: SIGTERM when the launcher dies (Linux), so no process outlives the run."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _relay(stream, sink, prefix: str) -> None:
    for line in iter(stream.readline, b""):
        sink.buffer.write(prefix.encode() + line)
        sink.buffer.flush()
    stream.close()


def launch(count: int, command: list[str], environ=None) -> int:
    """Runs `command` as `count` processes of one run; returns the first failure's exit code."""
    envs = process_environments(count, free_ports(count), environ)
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  start_new_session=True, preexec_fn=_die_with_parent)
                 for env in envs]
    relays = [threading.Thread(target=_relay, args=(stream, sink, f"[process {index}] "),
                               daemon=True)
              for index, process in enumerate(processes)
              for stream, sink in ((process.stdout, sys.stdout), (process.stderr, sys.stderr))]
    for relay in relays:
        relay.start()

    def forward(signum, frame):
        for process in processes:
            if process.poll() is None:
                process.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    failures = []
    remaining = list(processes)
    while remaining:
        for process in list(remaining):
            try:
                code = process.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                continue
            remaining.remove(process)
            if code:
                failures.append(code)
    for relay in relays:
        relay.join()
    return failures[0] if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m monet_tf launch", description=__doc__.split("\n\n")[0],
        usage="python -m monet_tf launch --num_processes=N -- COMMAND [ARG ...]")
    parser.add_argument("--num_processes", type=int, required=True,
                        help="how many processes of the run to start on this machine")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command each one runs")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.num_processes < 1:
        commandline.fail(f"--num_processes={args.num_processes}: must be at least 1")
    if not command:
        commandline.fail("no command: give it after --, e.g. -- python run_train.py --backend=jax")
    return launch(args.num_processes, command)


if __name__ == "__main__":
    sys.exit(main())
