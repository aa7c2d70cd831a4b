"""A full disk as one line: which write failed, how much it needed, how much was free.

A write of a run that can be large (a checkpoint, an export, a sample grid, the submission zip)
runs inside `writing(path, needed)`: the error a full disk raises there becomes `DiskFull`, which
names that path and its size. What a full disk raises differs by layer: Python's OSError with
errno ENOSPC, EDQUOT or EFBIG (a quota, or the file size limit of the file system or of the
process), and TensorFlow's file system's ResourceExhaustedError ("<path>; No space left on
device", also for its own temporary files such as `ckpt-9_temp/...`). `disk_full` recognises each
of them, here alone; `monet_tf.runtime.commandline.run` turns any of them into
`error: <the line>` and exit 2, so every command-line tool says it the same way.

Imports nothing heavy: TensorFlow's error is known by its name and text.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from typing import Callable, Iterator

# errno -> what the line says; and the same conditions in TensorFlow's messages (strerror's text).
_REASONS = {errno.ENOSPC: "no space left on the device",
            errno.EDQUOT: "the disk quota is exceeded",
            errno.EFBIG: "the file is larger than the file system or this process may write"}
_TEXTS = {"no space left on device": errno.ENOSPC, "disk quota exceeded": errno.EDQUOT,
          "file too large": errno.EFBIG}
_TF_PATH = re.compile(r"(?:^|[\s}])([^\s;{}]+); (" + "|".join(_TEXTS) + ")", re.IGNORECASE)


FREE_SPACE = "Free some space, then rerun the same command"


class DiskFull(Exception):
    """A write found no space; str() is the line the user sees. `then`: what to do about it,
    said by the outermost `writing` that knows (training: continue from the last checkpoint)."""

    def __init__(self, path: str | None, reason: int = errno.ENOSPC, needed: int | None = None,
                 what: str | None = None, then: str | None = None):
        super().__init__(path)
        self.path, self.reason, self.needed, self.what, self.then = path, reason, needed, what, then
        self.free = free_bytes(path) if path else None
        self.cleaned = False  # Whether what the write left partial was removed.
        self.said: str | None = None  # The line a subprocess said it in, without its advice.

    def __str__(self) -> str:
        return f"{self.said or self._what_happened()}. {self.then or FREE_SPACE}"

    def _what_happened(self) -> str:
        path, what = self.path, self.what
        where = f"writing {what} to {path}" if what and path else f"writing {path or 'a file'}"
        sizes = ", ".join(size for size in (
            f"it needs about {human_size(self.needed)}" if self.needed else "",
            f"{human_size(self.free)} free there" if self.free is not None else "") if size)
        cleaned = "; the part written is removed" if self.cleaned else ""
        return f"{where}: {_REASONS[self.reason]}{f' ({sizes})' if sizes else ''}{cleaned}"


def human_size(count: float) -> str:
    if count < 1000:
        return f"{int(count)} bytes"
    for unit in ("KB", "MB", "GB"):
        count /= 1000
        if count < 1000:
            break
    return f"{count:.1f} {unit}"


def free_bytes(path: str) -> int | None:
    """Bytes free to this user on the file system of `path` (its nearest existing folder);
    None for an object store (gs://...)."""
    if "://" in path:
        return None
    folder = os.path.abspath(path)
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _condition(err: BaseException) -> tuple[int, str | None] | None:
    """(errno, path or None) when `err` itself says the disk is full."""
    if isinstance(err, OSError) and err.errno in _REASONS:
        return err.errno, err.filename
    text = str(err)
    match = _TF_PATH.search(text)
    if match:
        return _TEXTS[match.group(2).lower()], match.group(1)
    if type(err).__name__ in ("ResourceExhaustedError", "OutOfRangeError", "UnknownError"):
        for phrase, code in _TEXTS.items():
            if phrase in text.lower():
                return code, None
    return None


def _chain(err: BaseException | None) -> Iterator[BaseException]:
    """`err` and the errors it was raised from or while handling."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def disk_full(err: BaseException) -> DiskFull | None:
    """`err` as DiskFull when it (or an error it was raised from) is a full disk, else None."""
    for cause in _chain(err):
        if isinstance(cause, DiskFull):
            return cause
        found = _condition(cause)
        if found:
            return DiskFull(found[1], found[0])
    return None


@contextlib.contextmanager
def writing(path: str, needed: int | Callable[[], int] | None = None, what: str | None = None,
            cleanup: Callable[[], None] | None = None, then: str | None = None) -> Iterator[None]:
    """A full disk inside becomes DiskFull naming `path` (`what` it writes, of `needed` bytes:
    a count, or a function that counts, called only then), once `cleanup` has removed what the
    write left partial. Without `what`, the path the error names, when it names one, is kept
    (an outer context around many small writes). `then`: the advice, unless an inner one gave
    it."""
    try:
        yield
    except Exception as err:
        full = disk_full(err)
        if full is None:
            raise
        if cleanup is not None:
            cleanup()
        if not any(full is cause for cause in _chain(err)):  # Not said by an inner write.
            size = needed() if callable(needed) else needed
            full = DiskFull(path if what else full.path or path, full.reason, size, what)
            full.cleaned = cleanup is not None
        full.then = full.then or then
        if full is err:
            raise
        raise full from err


def reported_by(output: str, path: str) -> DiskFull | None:
    """The DiskFull that a monet_tf subprocess writing `path` said in `output` (its one line:
    what it had written is removed), else None."""
    for line in reversed(output.splitlines()):
        for code, reason in _REASONS.items():
            if line.startswith("error: writing ") and f": {reason}" in line:
                full = DiskFull(path, code)
                full.said = line.removeprefix("error: ").split(f". {FREE_SPACE}")[0]
                return full
    return None


def write_bytes(path: str, data: bytes, what: str) -> None:
    """`data` to `path` (any tf.io.gfile path); on a full disk, the part written is removed."""
    import tensorflow as tf

    def remove_partial() -> None:
        with contextlib.suppress(Exception):
            tf.io.gfile.remove(path)

    with writing(path, len(data), what, cleanup=remove_partial):
        with tf.io.gfile.GFile(path, "wb") as f:
            f.write(data)
