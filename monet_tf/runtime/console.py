"""A quiet console for the command-line tools: native log noise off unless --verbosity asks.

TensorFlow 2.21 and jaxlib write C++ log lines through absl before absl::InitializeLog() runs,
so TF_CPP_MIN_LOG_LEVEL does not reach all of them: the oneDNN and CUDA banners, cuInit
failures on machines without a GPU, grappler's "remapper failed" in the middle of the first
epoch. Those lines are filtered out of file descriptor 2 by a small forked process, which
passes everything else through (Python tracebacks, our messages, real C++ errors) and outlives
a crash of the main process, so a fatal log line is never lost. Python-side absl INFO lines
("Sharding callback duration", "Assets written to") go by setting absl's verbosity to WARNING.
"""

from __future__ import annotations

import os
import re
import signal
import sys

# absl's C++ line prefix: severity, MMDD, time, thread id, file:line].
_NATIVE = re.compile(rb"^([IWEF])\d{4} [\d:.]+\s+\d+ [^\s\]]+:\d+\] ")
_BANNER = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# ERROR lines that are harmless where they appear: no GPU on this machine, a graph rewrite
# that grappler skips, CUDA plugins registered twice when TensorFlow and JAX both load, oneDNN
# falling back to Eigen for int64 ops.
_FILTERING = False  # This process's fd 2 already goes through the filter.
HARMLESS_ERRORS = (b"failed call to cuInit", b"remapper failed", b"Unable to register cu",
                   b"cuda_platform.cc", b"oneDNN supports DT_INT64 only")


def warn(message: str) -> None:
    """A warning of ours on stderr. Not through absl's logging: its lines have the native
    format, which the filter drops."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def is_noise(line: bytes) -> bool:
    """INFO/WARNING native log lines, absl's banner, and the known-harmless ERROR lines."""
    if line.rstrip(b"\r\n") == _BANNER:
        return True
    match = _NATIVE.match(line)
    if not match:
        return False
    severity = match.group(1)
    return severity in (b"I", b"W") or (
        severity == b"E" and any(text in line for text in HARMLESS_ERRORS))


# JAX ends a process from C++ when the coordinator of a multi-process run (process 0) is gone:
# this fatal line, then the coordination service named as the remote end that failed.
_JAX_FATAL = b"Terminating process because the JAX distributed service detected fatal errors"
_FROM_COORDINATOR = b"remote target coordination_service"
LOST_COORDINATOR = (b"error: lost process 0 of the run, its coordinator (killed, crashed or "
                    b"preempted: its own log says why), so JAX stopped this process too. Restart "
                    b"every process with the same command to resume from the last checkpoint.\n")


def _forward(source: int, sink: int) -> None:
    dropped_last = False
    fatal = coordinator_gone = False
    with os.fdopen(source, "rb", buffering=0) as lines:
        for line in iter(lines.readline, b""):
            blank_after_noise = dropped_last and not line.strip()
            dropped_last = is_noise(line)
            if not dropped_last and not blank_after_noise:
                os.write(sink, line)
            fatal = fatal or _JAX_FATAL in line
            coordinator_gone = coordinator_gone or (fatal and _FROM_COORDINATOR in line)
    if coordinator_gone:  # The process has died: say in one line what happened.
        os.write(sink, LOST_COORDINATOR)


def filter_native_logs() -> bool:
    """Routes this process's stderr (fd 2, inherited by its children) through the filter.

    Call it before TensorFlow or JAX is imported. Returns False where fork is unavailable.
    """
    global _FILTERING
    if _FILTERING:
        return True
    if not hasattr(os, "fork"):
        return False
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # The filter: stops at end of input, once every writer has closed fd 2.
        os.close(write_end)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)  # A Ctrl-C is for the trainer to handle.
        try:
            _forward(read_end, 2)
        finally:
            os._exit(0)
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    _FILTERING = True
    return True


def quiet(verbosity_given: bool, verbosity: int) -> bool:
    """Applies the console policy of an absl program: returns True when it quietened it.

    Without --verbosity, or with a negative one: absl at WARNING, TF_CPP_MIN_LOG_LEVEL 2 (unless
    set) and the native log filter. --verbosity=0 (INFO) or more leaves everything as it is.
    """
    from absl import logging

    if verbosity_given and verbosity >= 0:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        return False
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.set_verbosity(logging.WARNING)
    filter_native_logs()
    return True
