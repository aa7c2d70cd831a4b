"""Reads what a wandb offline run wrote (its `.wandb` file), to check what reached wandb.

wandb's Go core no longer ships a Python reader, and an offline run's `run.summary` only shows a
step once a later step commits it. The file is a LevelDB-style log: a 7-byte header, then 32 KiB
blocks of chunks (crc32, length, type: full/first/middle/last), each record a protobuf `Record`.
"""

import json
import pathlib
import struct
import time

from wandb.proto import wandb_internal_pb2

_HEADER = struct.Struct("<4sHB")
_CHUNK = struct.Struct("<IHB")
_BLOCK = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _records(path: pathlib.Path):
    data = path.read_bytes()
    ident, magic, _version = _HEADER.unpack_from(data)
    assert ident == b":W&B" and magic == 0xBEE1, f"{path} is not a wandb run file"
    pos, pending = _HEADER.size, b""
    while pos + _CHUNK.size <= len(data):
        room = _BLOCK - pos % _BLOCK
        if room < _CHUNK.size:  # the block's tail is zero padding
            pos += room
            continue
        _crc, length, kind = _CHUNK.unpack_from(data, pos)
        if (kind == 0 and length == 0) or pos + _CHUNK.size + length > len(data):
            break  # zero fill at the end of the file, or a chunk still being written
        chunk = data[pos + _CHUNK.size: pos + _CHUNK.size + length]
        pos += _CHUNK.size + length
        pending = chunk if kind in (_FULL, _FIRST) else pending + chunk
        if kind in (_FULL, _LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def _finished_records(path: pathlib.Path, timeout: float = 60.0) -> list:
    """The run's records once its `exit` record is on disk: wandb.finish() can return before
    wandb's core has flushed the file (seen on a loaded CI machine)."""
    deadline = time.monotonic() + timeout
    while True:
        records = list(_records(path))
        if any(r.WhichOneof("record_type") == "exit" for r in records):
            return records
        if time.monotonic() > deadline:
            raise AssertionError(f"{path}: no exit record after {timeout:.0f} s")
        time.sleep(0.2)


def history(run_dir: pathlib.Path) -> list[dict]:
    """The rows logged with `run.log`, in order, as {key: value}."""
    (path,) = pathlib.Path(run_dir).glob("*.wandb")
    rows = []
    for record in _finished_records(path):
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                         for item in record.history.item})
    return rows
