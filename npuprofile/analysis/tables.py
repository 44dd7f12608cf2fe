"""Backend tables beside (or instead of) traces: their device time, op totals and stated step figures.

The backends' layouts name the table files and a reader for them
(:class:`~npuprofile.backends.tables.DeviceTables`). From per-activity rows the
device time is computed as from a trace's device lanes (every row counts, steps
as the table states them); per-op totals become device ops when no per-activity
table is there; per-step splits become :class:`StatedDeviceTime` rows, the
figures the backend's own tools state, to check ours against.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
from pathlib import Path
from typing import Callable, Sequence

from npuprofile.analysis.device_time import DeviceTime, DeviceTimeBuilder
from npuprofile.analysis.layouts import TraceRules
from npuprofile.backends.tables import DeviceTables
from npuprofile.errors import TraceError
from npuprofile.summary.model import StatedDeviceTime

__all__ = ["StatedDeviceTime", "TableResult", "read_tables", "stated_from_overlap"]


def _ns(us: float) -> int:
    return int(round(us * 1000))


@dataclasses.dataclass
class TableResult:
    """What one directory's tables give."""

    directory: Path
    files: list[Path]
    device_ops: dict[str, list[float]]
    device_time: list[DeviceTime]
    stated: list[StatedDeviceTime]
    rows: int


def stated_from_overlap(overlap: dict[str, float], device: str, rank: int | None) -> StatedDeviceTime | None:
    """The figures of a trace's own overlap lanes (``compute``, ``communication``, ``idle``, ...)."""
    if not overlap:
        return None
    return StatedDeviceTime(rank, device, "overlap lanes", None, _ns(overlap.get("compute", 0.0)),
                            _ns(overlap.get("communication", 0.0)),
                            _ns(overlap.get("communication_not_overlapped", 0.0)), _ns(overlap.get("idle", 0.0)))


def read_tables(paths: Sequence[Path], rules: TraceRules, rank: int | None, *,
                with_activities: bool = True) -> TableResult | None:
    """Read the tables among ``paths`` (one directory's) with the readers the layouts name.

    ``with_activities=False`` (a trace beside them holds the same activities)
    keeps only the stated step figures.
    """
    tables = DeviceTables()
    for globs, reader_path in rules.table_readers:
        mine = [p for p in paths if any(fnmatch.fnmatch(p.name, g.rsplit("/", 1)[-1]) for g in globs)]
        if not mine:
            continue
        found = _reader(reader_path)(mine)
        tables.files += found.files
        tables.activities += found.activities
        tables.ops += found.ops
        tables.steps += found.steps
    if not tables.files:
        return None
    directory = tables.files[0].parent
    source = "tables: " + ", ".join(sorted({f.name for f in tables.files}))
    stated = [StatedDeviceTime(rank, step.device or "device", source, step.step, _ns(step.compute_us), _ns(step.communication_us),
                               _ns(step.communication_not_overlapped_us), _ns(step.idle_us))
              for step in tables.steps]
    device_ops: dict[str, list[float]] = {}
    device_time: list[DeviceTime] = []
    if with_activities:
        by_device: dict[str, DeviceTimeBuilder] = {}
        for activity in sorted(tables.activities, key=lambda a: (a.start_us, -a.dur_us)):
            device = activity.device or "device"
            builder = by_device.get(device)
            if builder is None:
                builder = by_device[device] = DeviceTimeBuilder(None, ())
            builder.add_in_step(activity.start_us, activity.start_us + activity.dur_us, activity.stream,
                                activity.kind, activity.step)
            row = device_ops.setdefault(activity.name, [0, 0.0, 0.0])
            row[0] += 1
            row[1] += activity.dur_us
            row[2] += activity.dur_us
        for device, builder in sorted(by_device.items()):
            result = builder.result(rank, device)
            if result is not None:
                device_time.append(result)
        if not tables.activities:
            for op in tables.ops:
                row = device_ops.setdefault(op.name, [0, 0.0, 0.0])
                row[0] += op.count
                row[1] += op.total_us
                row[2] += op.total_us
    rows = len(tables.activities) + len(tables.ops) + len(tables.steps)
    return TableResult(directory, tables.files, device_ops, device_time, stated, rows)


def _reader(path: str) -> Callable[[list[Path]], DeviceTables]:
    module_name, _, function = path.partition(":")
    try:
        module = importlib.import_module(module_name)
        reader = getattr(module, function)
    except (ImportError, AttributeError) as exc:
        raise TraceError(f"table reader {path!r} named by a backend layout cannot be loaded: {exc}") from None
    return reader  # type: ignore[no-any-return]
