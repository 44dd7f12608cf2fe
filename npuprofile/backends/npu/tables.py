"""The CSV tables torch_npu's analysis writes beside ``trace_view.json``, read for the trace analysis.

- ``kernel_details.csv``: one row per device task (``Name``, ``Type``,
  ``Accelerator Core``, ``Start Time(us)``, ``Duration(us)``, ``Stream ID``,
  ``Step Id``); HCCL rows are communication, ``MEMCPY*`` types memory.
- ``op_statistic.csv``: totals per op type (``OP Type``, ``Count``, ``Total Time(us)``).
- ``step_trace_time.csv``: per step, ``Computing``, ``Communication``,
  ``Communication(Not Overlapped)`` and ``Free`` time.

Newer releases add a ``Device_id`` column and more columns to the right; files
renamed with a suffix (``kernel_details_run1.csv``) are read too. Rows that do
not parse (``N/A`` times) are skipped. Start times (about 1.7e15 us) are read
exactly and kept relative to the first one read, since a float holds them only
to 0.25 us.
"""

from __future__ import annotations

import csv
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Iterator, Sequence

from npuprofile.backends.tables import DeviceTables, TableActivity, TableOp, TableStep
from npuprofile.errors import TraceError

__all__ = ["read_tables"]

_COMMUNICATION_CORES = frozenset({"HCCL", "COMMUNICATION"})


def read_tables(paths: Sequence[Path]) -> DeviceTables:
    """Read every table among ``paths`` (kind told by the file name); others are ignored."""
    tables = DeviceTables()
    origin = _Origin()
    for path in paths:
        name = path.name.lower()
        if name.startswith("kernel_details"):
            tables.activities.extend(_kernels(path, origin))
        elif name.startswith("op_statistic"):
            tables.ops.extend(_ops(path))
        elif name.startswith("step_trace_time"):
            tables.steps.extend(_steps(path))
        else:
            continue
        tables.files.append(path)
    return tables


def _rows(path: Path) -> Iterator[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as handle:
            for row in csv.DictReader(handle):
                yield {(key or "").strip(): (value or "").strip() for key, value in row.items() if key is not None}
    except OSError as exc:
        raise TraceError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except csv.Error as exc:
        raise TraceError(f"{path}: not a CSV table ({exc})") from None


def _number(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return float(text.strip().strip('"'))
    except ValueError:
        return None


class _Origin:
    """Start times relative to the whole microseconds of the first one read, parsed exactly."""

    def __init__(self) -> None:
        self.us: int | None = None

    def start(self, text: str | None) -> float | None:
        try:
            value = Decimal((text or "").strip().strip('"'))
        except InvalidOperation:
            return None
        if not value.is_finite():
            return None
        if self.us is None:
            self.us = int(value)
        return float(value - self.us)


def _integer(text: str | None) -> int | None:
    value = _number(text)
    return int(value) if value is not None and value == int(value) else None


def _device(row: dict[str, str]) -> str | None:
    device = _integer(row.get("Device_id"))
    return None if device is None else f"NPU {device}"


def _kernels(path: Path, origin: _Origin) -> Iterator[TableActivity]:
    for row in _rows(path):
        start = origin.start(row.get("Start Time(us)"))
        duration = _number(row.get("Duration(us)"))
        if start is None or duration is None:
            continue
        core = row.get("Accelerator Core", "").upper()
        kind_of = row.get("Type", "").upper()
        if core in _COMMUNICATION_CORES or kind_of.startswith("HCOM"):
            kind = "communication"
        elif kind_of.startswith(("MEMCPY", "MEMSET")):
            kind = "memory"
        else:
            kind = "compute"
        stream = row.get("Stream ID", "")
        if _integer(stream) is None:
            stream = core or "?"
        yield TableActivity(row.get("Name", "") or kind_of, start, duration, kind, stream,
                            _integer(row.get("Step Id")), _device(row))


def _ops(path: Path) -> Iterator[TableOp]:
    for row in _rows(path):
        count = _integer(row.get("Count"))
        total = _number(row.get("Total Time(us)"))
        name = row.get("OP Type", "")
        if name and count is not None and total is not None:
            yield TableOp(name, count, total)


def _steps(path: Path) -> Iterator[TableStep]:
    for row in _rows(path):
        compute = _number(row.get("Computing"))
        if compute is None:
            continue
        yield TableStep(
            step=_integer(row.get("Step")), device=_device(row), compute_us=compute,
            communication_us=_number(row.get("Communication")) or 0.0,
            communication_not_overlapped_us=_number(row.get("Communication(Not Overlapped)")) or 0.0,
            idle_us=_number(row.get("Free")) or 0.0,
        )
