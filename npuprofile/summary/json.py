"""The JSON renderer and reader: one document layout for every summary, versioned.

Every document carries ``schema_version`` (:data:`~npuprofile.summary.model.SCHEMA_VERSION`)
and every section, empty where its producer has nothing for it, so a reader
handles session, trace, gathered and bench summaries alike. Op rows are split
by kind: ``ops`` holds rows timed on host and device together (a profiler's op
table), ``cpu_ops``, ``device_ops`` and ``sync_ops`` the rows of one lane
(trace analysis), so every row appears once.
:func:`load` reads these documents back, and those written before
``schema_version`` existed (version 1).
"""

from __future__ import annotations

import dataclasses
import json as _json
from pathlib import Path
from typing import Any, Callable, TypeVar

from npuprofile.errors import TraceError
from npuprofile.sessions.files import atomic_write_text
from npuprofile.summary.model import (
    ALL_RANKS,
    BENCH,
    CLASSES,
    DEVICE,
    HOST,
    HOST_AND_DEVICE,
    SCHEMA_VERSION,
    SESSION,
    SYNC,
    TRACE,
    DeviceTime,
    KernelTypeTime,
    MemoryRow,
    OpRow,
    RankView,
    RegionRow,
    SourceRow,
    StatedDeviceTime,
    StepDeviceTime,
    StepRow,
    StepTimeline,
    Straggler,
    StreamTime,
    Summary,
    TimelineItem,
    TimelineRow,
)

_T = TypeVar("_T")


def dumps_json(data: Any, indent: int = 2) -> str:
    """JSON text of ``data`` (orjson when present: summaries are written on the way out of a session)."""
    try:
        import orjson
    except ImportError:  # pragma: no cover - orjson is a declared dependency
        return _json.dumps(data, indent=indent or None, default=str)
    option = orjson.OPT_INDENT_2 if indent else 0
    return orjson.dumps(data, option=option | orjson.OPT_NON_STR_KEYS, default=str).decode()


def to_dict(summary: Summary) -> dict[str, Any]:
    """The summary as plain JSON types (durations in nanoseconds)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": summary.kind,
        "name": summary.name,
        "metadata": summary.metadata,
        "regions": [r.to_dict() for r in summary.regions],
        "steps": [s.to_dict() for s in summary.steps],
        "ops": [o.to_dict() for o in summary.ops_of(HOST_AND_DEVICE)],
        "cpu_ops": [o.to_dict() for o in summary.ops_of(HOST)],
        "device_ops": [o.to_dict() for o in summary.ops_of(DEVICE)],
        "sync_ops": [o.to_dict() for o in summary.ops_of(SYNC)],
        "memory": [m.to_dict() for m in summary.memory],
        "sources": [s.to_dict() for s in summary.sources],
        "per_rank": {str(view.rank): [r.to_dict() for r in view.regions] for view in summary.ranks if view.selected},
        "stragglers": [s.to_dict() for s in summary.stragglers.values()],
        "device_time": [d.to_dict() for d in summary.device_time],
        "device_time_stated": [d.to_dict() for d in summary.device_time_stated],
        "late_events": summary.late_events,
        "timelines": [t.to_dict() for t in summary.timelines],
    }


def render(summary: Summary, path: str | Path | None = None, *, indent: int = 2) -> str:
    """The summary as JSON text; also written atomically to ``path`` when given."""
    text = dumps_json(to_dict(summary), indent=indent)
    if path is not None:
        atomic_write_text(Path(path), text + "\n")
    return text


def load(path: str | Path) -> Summary:
    """Read a summary JSON file (any schema version up to this one's) back into the model."""
    path = Path(path)
    try:
        data = _json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise TraceError(f"{path}: not a JSON summary ({exc})") from exc
    try:
        return from_dict(data)
    except (TypeError, KeyError, ValueError) as exc:
        raise TraceError(f"{path}: not an npuprofile summary ({type(exc).__name__}: {exc})") from exc


def from_dict(data: Any) -> Summary:
    """The model of a summary document (what :func:`to_dict` returns, or a version-1 document)."""
    if not isinstance(data, dict) or not isinstance(data.get("regions"), list):
        raise ValueError("a summary is a JSON object with a 'regions' list")
    version = data.get("schema_version", 1)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ValueError(f"schema_version={version!r} is newer than this npuprofile reads (up to {SCHEMA_VERSION})")
    metadata = data.get("metadata") or {}
    kind = data.get("kind") or _kind_of_version_1(data, metadata)
    if kind not in CLASSES:
        raise ValueError(f"kind={kind!r} is not a kind of summary; kinds: {', '.join(CLASSES)}")
    ops = [op for key in ("ops", "cpu_ops", "device_ops", "sync_ops") for op in _rows(data, key, _op)]
    stragglers = _rows(data, "stragglers", _straggler)
    return CLASSES[kind](
        regions=_rows(data, "regions", _region),
        ops=ops,
        steps=_rows(data, "steps", _step),
        metadata=dict(metadata),
        kind=kind,
        name=data.get("name") or (metadata.get("bench") or {}).get("name"),
        memory=_rows(data, "memory", _fields(MemoryRow)),
        sources=_rows(data, "sources", _fields(SourceRow)),
        ranks=_ranks(data, metadata),
        stragglers={s.region: s for s in stragglers},
        device_time=_rows(data, "device_time", _device_time),
        device_time_stated=_rows(data, "device_time_stated", _fields(StatedDeviceTime)),
        late_events=int(data.get("late_events") or 0),
        timelines=_rows(data, "timelines", _timeline),
    )


def _kind_of_version_1(data: dict[str, Any], metadata: dict[str, Any]) -> str:
    if "sources" in data:
        return TRACE
    if "per_rank" in data:
        return ALL_RANKS
    return BENCH if "bench" in metadata else SESSION


def _rows(data: dict[str, Any], key: str, make: Callable[[dict[str, Any]], _T]) -> list[_T]:
    return [make(item) for item in data.get(key) or ()]


def _fields(cls: type[_T]) -> Callable[[dict[str, Any]], _T]:
    """A maker of ``cls`` rows from a dict: the keys it knows go in, later additions are left out."""
    names = {field.name for field in dataclasses.fields(cls)}  # type: ignore[arg-type]

    def make(item: dict[str, Any]) -> _T:
        return cls(**{k: v for k, v in item.items() if k in names})

    return make


def _region(item: dict[str, Any]) -> RegionRow:
    if "mean_ns" not in item:  # version 1 trace rows
        item = {**item, "mean_ns": item["total_ns"] / item["count"] if item["count"] else 0.0}
    return _fields(RegionRow)(item)


def _op(item: dict[str, Any]) -> OpRow:
    if "self_host_ns" in item:
        return _fields(OpRow)(item)
    # a version 1 trace row: one clock's self and total time
    clock = "host" if item["kind"] == HOST else "device"
    return OpRow(item["name"], item["count"], kind=item["kind"], rank=item.get("rank"), share=item.get("share"),
                 **{f"self_{clock}_ns": item["self_ns"], f"total_{clock}_ns": item["total_ns"]})


def _step(item: dict[str, Any]) -> StepRow:
    index = item["index"] if "index" in item else item["step"]
    return StepRow(index, item["duration_ns"], dict(item["regions"]), item.get("start_ns"), item.get("rank"),
                   item.get("source"))


def _straggler(item: dict[str, Any]) -> Straggler:
    return Straggler(item["region"], item["rank"], item["total_ns"], item["median_ns"])


def _ranks(data: dict[str, Any], metadata: dict[str, Any]) -> list[RankView]:
    """Rank views from ``metadata.ranks`` (every rank's shared facts) and ``per_rank`` (the profiled ones' regions)."""
    per_rank = data.get("per_rank") or {}
    entries = metadata.get("ranks")
    views = []
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict):
            continue  # a trace summary's list of rank numbers
        rank = int(entry["rank"])
        facts = {k: v for k, v in entry.items() if k != "selected"}
        regions = [_region(r) for r in per_rank.get(str(rank), ())]
        views.append(RankView(rank, bool(entry.get("selected", True)), facts, regions))
    return views


def _device_time(item: dict[str, Any]) -> DeviceTime:
    fields = {
        **item,
        "streams": [_fields(StreamTime)(s) for s in item.get("streams") or ()],
        "kernel_types": [_fields(KernelTypeTime)(k) for k in item.get("kernel_types") or ()],
        "steps": [_fields(StepDeviceTime)(s) for s in item.get("steps") or ()],
    }
    return _fields(DeviceTime)(fields)


def _timeline(item: dict[str, Any]) -> StepTimeline:
    rows = [_fields(TimelineRow)({**row, "items": [_fields(TimelineItem)(i) for i in row.get("items") or ()]})
            for row in item.get("rows") or ()]
    return _fields(StepTimeline)({**item, "rows": rows})
