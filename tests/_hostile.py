"""Hostile and broken trace files, written in constant memory (shared by the tests and benchmarks/hostile_inputs.py).

Each writer takes a path and a scale in MB and returns the path written.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Callable

HEADER = b'{"schemaVersion": 1, "traceEvents": ['
EVENT = {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": 100.0, "dur": 5.0, "args": {}}
_BLOCK = 1 << 20


def inflated_size(path: Path) -> int:
    """Bytes of JSON a file holds: its size, or for gzip the size it inflates to (from its trailer)."""
    with open(path, "rb") as handle:
        if handle.read(2) != b"\x1f\x8b":
            return path.stat().st_size
        handle.seek(-4, 2)
        return int.from_bytes(handle.read(4), "little")


def _event(**fields: object) -> bytes:
    return json.dumps({**EVENT, **fields}).encode()


def _repeat(handle, unit: bytes, total: int) -> None:  # type: ignore[no-untyped-def]
    block = unit * max(1, _BLOCK // len(unit))
    written = 0
    while written < total:
        piece = block[: total - written]
        handle.write(piece)
        written += len(piece)


def gzip_string_bomb(path: Path, mb: int) -> Path:
    """A small gzip that inflates to one JSON string of ``mb`` MB inside the first event."""
    with gzip.open(path, "wb", compresslevel=9) as handle:
        handle.write(HEADER + b'{"ph": "X", "name": "')
        _repeat(handle, b"A", mb << 20)
        handle.write(b'", "ts": 1, "dur": 1}]}')
    return path


def huge_key(path: Path, mb: int) -> Path:
    """An event whose one key is ``mb`` MB long."""
    with open(path, "wb") as handle:
        handle.write(HEADER + _event() + b', {"')
        _repeat(handle, b"k", mb << 20)
        handle.write(b'": 1}]}')
    return path


def identical_timestamps(path: Path, mb: int) -> Path:
    """``mb`` MB of valid events that all start at the same time (each nests inside the one before)."""
    unit = _event(ts=1.0, dur=5.0) + b","
    with open(path, "wb") as handle:
        handle.write(HEADER)
        _repeat(handle, unit, (mb << 20) // len(unit) * len(unit))
        handle.write(_event(ts=1.0, dur=5.0) + b"]}")
    return path


def sparse_after_header(path: Path, mb: int) -> Path:
    """A valid header and one event, then ``mb`` MB of NUL bytes (a sparse file: no disk used)."""
    with open(path, "wb") as handle:
        handle.write(HEADER + _event() + b",")
        handle.truncate(handle.tell() + (mb << 20))
    return path


def whitespace_between_events(path: Path, mb: int, packed: bool = False) -> Path:
    """Two valid events with ``mb`` MB of whitespace between them (valid JSON)."""
    opener: Callable[..., object] = gzip.open if packed else open
    with opener(path, "wb") as handle:  # type: ignore[operator]
        handle.write(HEADER + _event(ts=1.0))  # type: ignore[attr-defined]
        _repeat(handle, b" \n\t ", mb << 20)
        handle.write(b"," + _event(ts=10.0) + b"]}")  # type: ignore[attr-defined]
    return path


def deep_nesting(path: Path, levels: int) -> Path:
    """Valid events, then one whose ``args`` nest ``levels`` deep, then more valid events."""
    with open(path, "wb") as handle:
        handle.write(HEADER + b",".join(_event(ts=float(i)) for i in range(1000)))
        handle.write(b', {"ph": "X", "ts": 1, "dur": 1, "args": ' + b"[" * levels + b"]" * levels + b"}")
        handle.write(b"," + b",".join(_event(ts=float(i)) for i in range(1000)) + b"]}")
    return path


def one_lane_per_event(path: Path, mb: int) -> Path:
    """``mb`` MB of events, each on a thread of its own."""
    with open(path, "wb") as handle:
        handle.write(HEADER)
        size, tid = 0, 0
        while size < mb << 20:
            piece = _event(tid=tid) + b","
            handle.write(piece)
            size += len(piece)
            tid += 1
        handle.write(_event() + b"]}")
    return path


def huge_head(path: Path, mb: int) -> Path:
    """A top-level key of ``mb`` MB before the events."""
    with open(path, "wb") as handle:
        handle.write(b'{"note": "')
        _repeat(handle, b"n", mb << 20)
        handle.write(b'", "traceEvents": [' + _event() + b"]}")
    return path


def huge_tail(path: Path, mb: int) -> Path:
    """A top-level key of ``mb`` MB after the events."""
    with open(path, "wb") as handle:
        handle.write(HEADER + _event() + b'], "traceName": "')
        _repeat(handle, b"t", mb << 20)
        handle.write(b'"}')
    return path


def many_small_values(path: Path, mb: int) -> Path:
    """One event whose ``args`` hold an array of ``mb`` MB of empty objects (the most objects per byte)."""
    with open(path, "wb") as handle:
        handle.write(HEADER + _event() + b', {"ph": "X", "ts": 1, "dur": 1, "args": {"a": [{}')
        _repeat(handle, b",{}", (mb << 20) // 3 * 3)
        handle.write(b"]}}]}")
    return path


def distinct_names(path: Path, mb: int, name_bytes: int = 200) -> Path:
    """``mb`` MB of events, each with a name of its own (``name_bytes`` long)."""
    with open(path, "wb") as handle:
        handle.write(HEADER)
        size, index = 0, 0
        while size < mb << 20:
            piece = _event(name=f"{index:0{name_bytes}d}", ts=10.0 * index) + b","
            handle.write(piece)
            size += len(piece)
            index += 1
        handle.write(_event() + b"]}")
    return path
