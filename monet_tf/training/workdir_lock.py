"""One run per workdir: while it trains, a run holds `<workdir>/workdir.lock`, so a second one
started on the same workdir stops at once with one line naming the process that holds it.

The lock is the kernel's (flock), not the file's existence: it goes with the process however
that ends (kill -9, a crash, a preempted VM), so nothing is left that blocks the next run. The
file stays, with the last holder's pid, host, start time and command, for that line. In a run of
several processes process 0 holds it for all (it writes the workdir's files) and tells the
others whether it could. Object stores (gs://, s3://) have no such lock: a run there takes none
(docs/training.md).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
import sys
from typing import Iterator

from monet_tf.models.checkpoints import WorkdirError

LOCK_FILE = "workdir.lock"


class WorkdirInUse(WorkdirError):
    """Another run holds the workdir."""


def _holder(record: str) -> str:
    """Who holds the lock, from the record it wrote."""
    try:
        held = json.loads(record)
        return (f"process {held['pid']} on {held['host']} since {held['since']} "
                f"({held['command']})")
    except (ValueError, KeyError, TypeError):
        return "a process that is starting (it has not written who it is yet)"


def acquire(workdir: str) -> int:
    """The lock file's descriptor, locked; raises WorkdirInUse while another process holds it."""
    path = os.path.join(workdir, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        with open(path) as f:
            holder = _holder(f.read())
        os.close(fd)
        raise WorkdirInUse(
            f"--workdir={workdir} is in use by {holder}: two runs on one workdir would overwrite "
            "each other's checkpoints and logs. Wait for it to end (or stop it: it saves and a "
            f"rerun resumes), or use another --workdir; its lock is {path}") from None
    since = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    command = " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]])
    record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since,
                         "command": command[:200]})
    os.ftruncate(fd, 0)
    os.pwrite(fd, record.encode() + b"\n", 0)
    return fd


@contextlib.contextmanager
def hold(workdir: str, runtime) -> Iterator[None]:
    """The workdir, for this run alone while inside (every process of the run enters)."""
    fd, problem = None, ""
    if runtime.chief and "://" not in workdir:
        try:
            fd = acquire(workdir)
        except WorkdirInUse as err:
            problem = str(err)
    try:
        problem = runtime.exchange("workdir_lock", problem)[0]
        if problem:
            raise WorkdirInUse(problem)
        yield
    finally:
        if fd is not None:
            os.close(fd)  # Releases the lock. The record stays: the next holder replaces it.
