"""Summarize traces: top ops by self time (CPU and device), regions, steps, memory peaks, device time.

``summarize(path)`` streams every trace ``path`` names (a file, or a directory
of them), so memory does not grow with trace size. Durations in the result are
integer nanoseconds.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gc
import io
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from npuprofile.analysis.collect import Source, collect
from npuprofile.analysis.device_time import DeviceTime
from npuprofile.analysis.events import Progress
from npuprofile.analysis.runinfo import trace_facts
from npuprofile.analysis.tables import StatedDeviceTime
from npuprofile.sessions.files import atomic_write_text
from npuprofile.summary.model import dumps_json, format_ns, render_table

__all__ = ["OpRow", "RegionRow", "StepRow", "MemoryRow", "SourceRow", "TraceSummary", "summarize", "build_summary"]

DEFAULT_TOP = 20
_DEVICE_TYPES = {0: "cpu", 1: "cuda", 20: "privateuse1"}


@dataclasses.dataclass(frozen=True)
class OpRow:
    """One operator (or kernel, or synchronization marker) of one rank, all its calls together.

    ``share`` is its self time over the self time of every op of its kind and
    rank (not only of the rows shown).
    """

    name: str
    kind: str  # "cpu", "device" or "sync"
    count: int
    self_ns: int
    total_ns: int
    rank: int | None = None
    share: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class RegionRow:
    """One npuprofile region: total time, self time (nested regions excluded) and its share of step time."""

    name: str
    count: int
    total_ns: int
    self_ns: int
    share: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class StepRow:
    """One host ``ProfilerStep#N``: when it started (on one clock for every rank, from the earliest step),
    how long, and its regions' self times."""

    source: int
    rank: int | None
    step: int
    start_ns: int
    duration_ns: int
    regions: dict[str, int]

    @property
    def other_ns(self) -> int:
        """Time in the step outside every region."""
        return max(0, self.duration_ns - sum(self.regions.values()))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        data = dataclasses.asdict(self)
        data["other_ns"] = self.other_ns
        return data


@dataclasses.dataclass(frozen=True)
class MemoryRow:
    """Peak memory a device's allocator reported (``profile_memory=True`` traces)."""

    device: str
    peak_allocated: int
    peak_reserved: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class SourceRow:
    """One trace file that went into a summary."""

    path: str
    layout: str
    size_bytes: int
    events: int
    rank: int | None
    session_summary: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return dataclasses.asdict(self)


class TraceSummary:
    """What :func:`summarize` returns.

    ``str()`` is a text report; :meth:`to_dict`, :meth:`to_json`, :meth:`to_csv` are for machines.
    """

    def __init__(
        self,
        sources: Sequence[SourceRow],
        cpu_ops: Sequence[OpRow],
        device_ops: Sequence[OpRow],
        regions: Sequence[RegionRow],
        steps: Sequence[StepRow],
        memory: Sequence[MemoryRow],
        metadata: dict[str, Any],
        late_events: int = 0,
        sync_ops: Sequence[OpRow] = (),
        device_time: Sequence[DeviceTime] = (),
        device_time_stated: Sequence[StatedDeviceTime] = (),
    ) -> None:
        self.sources = list(sources)
        self.cpu_ops = list(cpu_ops)
        self.device_ops = list(device_ops)
        self.regions = list(regions)
        self.steps = list(steps)
        self.memory = list(memory)
        self.metadata = dict(metadata)
        self.late_events = late_events
        self.sync_ops = list(sync_ops)
        self.device_time = list(device_time)
        self.device_time_stated = list(device_time_stated)

    @property
    def step_time_ns(self) -> int:
        """Sum of all step durations."""
        return sum(step.duration_ns for step in self.steps)

    def region(self, name: str) -> RegionRow:
        """One region's row by name (``KeyError`` if absent)."""
        for row in self.regions:
            if row.name == name:
                return row
        raise KeyError(f"no region named {name!r}; regions: {[r.name for r in self.regions]}")

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON types (durations in nanoseconds)."""
        return {
            "metadata": self.metadata,
            "sources": [s.to_dict() for s in self.sources],
            "regions": [r.to_dict() for r in self.regions],
            "steps": [s.to_dict() for s in self.steps],
            "cpu_ops": [o.to_dict() for o in self.cpu_ops],
            "device_ops": [o.to_dict() for o in self.device_ops],
            "memory": [m.to_dict() for m in self.memory],
            "late_events": self.late_events,
            "sync_ops": [o.to_dict() for o in self.sync_ops],
            "device_time": [d.to_dict() for d in self.device_time],
            "device_time_stated": [d.to_dict() for d in self.device_time_stated],
        }

    def to_json(self, path: str | os.PathLike[str] | None = None, *, indent: int = 2) -> str:
        """The summary as JSON; also written atomically to ``path`` when given."""
        text = dumps_json(self.to_dict(), indent=indent)
        if path is not None:
            atomic_write_text(Path(path), text + "\n")
        return text

    def to_csv(self, path: str | os.PathLike[str] | None = None) -> str:
        """One CSV table of regions, steps and ops (a ``section`` column tells them apart)."""
        buffer = io.StringIO()
        fields = ["section", "name", "kind", "rank", "step", "count", "total_ns", "self_ns", "share"]
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for r in self.regions:
            writer.writerow({"section": "region", "name": r.name, "kind": "region", "count": r.count,
                             "total_ns": r.total_ns, "self_ns": r.self_ns, "share": f"{r.share:.6f}"})
        for s in self.steps:
            writer.writerow({"section": "step", "name": f"ProfilerStep#{s.step}", "kind": "step",
                             "rank": "" if s.rank is None else s.rank, "step": s.step, "count": 1,
                             "total_ns": s.duration_ns, "self_ns": s.other_ns})
        for o in (*self.cpu_ops, *self.device_ops, *self.sync_ops):
            writer.writerow({"section": "op", "name": o.name, "kind": o.kind, "rank": "" if o.rank is None else o.rank,
                             "count": o.count, "total_ns": o.total_ns, "self_ns": o.self_ns,
                             "share": f"{o.share:.6f}"})
        text = buffer.getvalue()
        if path is not None:
            atomic_write_text(Path(path), text)
        return text

    # -- text -------------------------------------------------------------------------
    def headline(self) -> str:
        """One line: what was read and the run it came from."""
        events = sum(s.events for s in self.sources)
        size = sum(s.size_bytes for s in self.sources)
        parts = [f"npuprofile trace summary: {len(self.sources)} trace(s), {_size(size)}, {events} events"]
        backend = self.metadata.get("backend")
        if backend:
            parts.append(f"backend={backend}")
        ranks = self.metadata.get("ranks") or []
        if ranks:
            parts.append("ranks=" + ",".join(str(r) for r in ranks))
        if self.steps:
            parts.append(f"steps={len(self.steps)} (mean {format_ns(self.step_time_ns / len(self.steps))})")
        return ", ".join(parts)

    def region_table(self) -> str:
        """The regions as a text table."""
        rows = [[r.name, str(r.count), format_ns(r.total_ns), format_ns(r.self_ns), f"{100 * r.share:.1f}%"]
                for r in self.regions]
        return render_table(("region", "count", "total", "self", "share"), rows)

    def step_table(self, columns: int = 6) -> str:
        """Steps with the self time of the busiest regions."""
        names = [r.name for r in sorted(self.regions, key=lambda r: r.self_ns, reverse=True)[:columns]]
        multi = len({s.source for s in self.steps}) > 1
        rows = []
        for s in self.steps:
            label = f"{s.step}" if not multi else f"{s.step} (rank {s.rank if s.rank is not None else s.source})"
            start = [format_ns(s.start_ns)] if multi else []
            rows.append([label, *start, format_ns(s.duration_ns), *(format_ns(s.regions.get(n, 0)) for n in names),
                         format_ns(s.other_ns)])
        return render_table(("step", *(["start"] if multi else []), "duration", *names, "other"), rows)

    def op_table(self, kind: str) -> str:
        """The top ops of one kind (``"cpu"``, ``"device"`` or ``"sync"``) as a text table."""
        ops = {"cpu": self.cpu_ops, "device": self.device_ops, "sync": self.sync_ops}[kind]
        ranked = len({o.rank for o in ops}) > 1
        rows = [[*([str(o.rank)] if ranked else []), o.name[:70], str(o.count), format_ns(o.self_ns),
                 f"{100 * o.share:.1f}%", format_ns(o.total_ns)] for o in ops]
        return render_table((*(["rank"] if ranked else []), f"{kind} op", "count", "self", "self %", "total"), rows)

    def device_time_table(self) -> str:
        """Device time per rank and device as a text table."""
        def share(part: int, whole: int) -> str:
            return f"{100 * part / whole:.1f}%" if whole else "-"

        rows = [[str(d.rank if d.rank is not None else "-"), d.device, format_ns(d.span_ns),
                 share(d.busy_ns, d.span_ns), share(d.idle_ns, d.span_ns), share(d.compute_ns, d.span_ns),
                 share(d.communication_ns, d.span_ns), share(d.memory_ns, d.span_ns),
                 "-" if d.comm_overlapped_share is None else f"{100 * d.comm_overlapped_share:.1f}%"]
                for d in self.device_time]
        return render_table(("rank", "device", "span", "busy", "idle", "compute", "communication", "memory",
                             "comm overlapped"), rows)

    def text(self) -> str:
        """The whole summary as readable text."""
        parts = [self.headline()]
        if self.late_events:
            parts.append(f"note: {self.late_events} events arrived far out of order; their nesting was not resolved")
        sections = [
            ("Regions (self excludes nested regions; share = self / step time)", self.regions, self.region_table),
            ("Steps", self.steps, self.step_table),
            ("Top CPU ops by self time", self.cpu_ops, lambda: self.op_table("cpu")),
            ("Top device ops by self time", self.device_ops, lambda: self.op_table("device")),
            ("Synchronization markers on device lanes", self.sync_ops, lambda: self.op_table("sync")),
            ("Device time (shares of each device's span)", self.device_time, self.device_time_table),
        ]
        for title, rows, render in sections:
            if rows:
                parts += ["", title, render()]
        if self.memory:
            rows = [[m.device, _size(m.peak_allocated), _size(m.peak_reserved)] for m in self.memory]
            parts += ["", "Memory peaks", render_table(("device", "allocated", "reserved"), rows)]
        if not (self.regions or self.steps or self.cpu_ops or self.device_ops):
            parts.append("(the trace holds no complete events)")
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        return (f"<TraceSummary sources={len(self.sources)} regions={len(self.regions)} steps={len(self.steps)} "
                f"cpu_ops={len(self.cpu_ops)} device_ops={len(self.device_ops)}>")


def summarize(
    path: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    top: int = DEFAULT_TOP,
    progress: Progress | None = None,
    include_last_step: bool = False,
) -> TraceSummary:
    """Stream the trace(s) at ``path`` (a file, a directory, or several) into a :class:`TraceSummary`.

    A directory may also hold only a backend's tables (CSV files its tools
    wrote); they are read instead. ``progress(bytes_done, bytes_total)`` is
    called as the files are read. ``include_last_step`` counts the device
    activities launched during the last host step too (see
    :mod:`npuprofile.analysis.device_time`). The cyclic garbage collector is
    paused meanwhile (the events are acyclic, and collections triggered by
    millions of fresh dicts would double the time).
    """
    with _gc_paused():
        sources = collect(path, progress=progress, include_last_step=include_last_step)
        summary = build_summary(sources, top=top)
    summary.metadata["device_window"] = "through the last step" if include_last_step else "before the last step"
    return summary


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _op_rows(table: dict[tuple[int | None, str], dict[str, list[float]]], kind: str, top: int) -> list[OpRow]:
    rows: list[OpRow] = []
    for (rank, table_kind), ops in sorted(table.items(), key=lambda item: (item[0][0] is None, item[0][0] or 0)):
        if table_kind != kind:
            continue
        total_self = sum(own for _, _, own in ops.values()) or 1.0
        ranked = sorted(ops.items(), key=lambda item: item[1][2], reverse=True)
        if top > 0:
            ranked = ranked[:top]
        rows += [OpRow(name, kind, int(c), _ns(own), _ns(t), rank, own / total_self) for name, (c, t, own) in ranked]
    return rows


def build_summary(sources: Sequence[Source], *, top: int = DEFAULT_TOP) -> TraceSummary:
    """Combine the sources of :func:`~npuprofile.analysis.collect.collect` into a :class:`TraceSummary`.

    Ops are tabled per rank; steps of every rank are put on one clock (each
    source's clock base plus its ``ts``) and start from the earliest step.
    """
    rows: list[SourceRow] = []
    ops: dict[tuple[int | None, str], dict[str, list[float]]] = {}
    regions: dict[str, list[float]] = {}
    memory: dict[str, list[float]] = {}
    metadata: dict[str, Any] = {}
    span_us = 0.0
    # The earliest step of all, as (clock base, ts): differences are taken part by part, since
    # absolute nanoseconds do not fit a float's precision.
    origin_base, origin_ts = min(((s.base_ns, ts) for s in sources for _, ts, _ in s.steps),
                                 key=lambda pair: pair[0] + pair[1] * 1000, default=(0, 0.0))
    steps: list[StepRow] = []
    for index, source in enumerate(sources):
        rows.append(SourceRow(str(source.path), source.layout, source.size, source.events, source.rank,
                              str(source.session_path) if source.session_path else None))
        session_meta = source.session_metadata
        if session_meta and not metadata:
            metadata.update({k: v for k, v in session_meta.items() if k != "trace_paths"})
        if source.metadata:
            metadata.setdefault("trace", trace_facts(source.metadata))
        for kind, table in (("cpu", source.cpu_ops), ("device", source.device_ops), ("sync", source.sync_ops)):
            target = ops.setdefault((source.rank, kind), {})
            for name, values in table.items():
                row = target.setdefault(name, [0, 0.0, 0.0])
                row[0] += values[0]
                row[1] += values[1]
                row[2] += values[2] if len(values) > 2 else values[1]
        for name, (count, total, own) in source.regions.items():
            row = regions.setdefault(name, [0, 0.0, 0.0])
            row[0] += count
            row[1] += total
            row[2] += own
        for number, ts, dur in source.steps:
            per_region = source.step_regions.get(number, {})
            start = int(round((source.base_ns - origin_base) + (ts - origin_ts) * 1000))
            steps.append(StepRow(index, source.rank, number, start, _ns(dur),
                                 {name: _ns(value) for name, value in per_region.items()}))
        if source.last_ts > source.first_ts:
            span_us += source.last_ts - source.first_ts
        for (device_type, device_id), (allocated, reserved) in source.memory.items():
            label = f"{_DEVICE_TYPES.get(device_type, device_type)}:{device_id}" if device_id not in (None, -1) \
                else str(_DEVICE_TYPES.get(device_type, device_type))
            peaks = memory.setdefault(label, [0.0, 0.0])
            peaks[0] = max(peaks[0], allocated)
            peaks[1] = max(peaks[1], reserved)
    metadata["ranks"] = sorted({s.rank for s in sources if s.rank is not None})
    malformed = sum(s.malformed for s in sources)
    if malformed:
        metadata["malformed_events"] = malformed
    steps.sort(key=lambda s: (s.start_ns, s.source))
    starts: dict[int, list[int]] = {}
    for step_row in steps:
        if step_row.rank is not None:
            starts.setdefault(step_row.step, []).append(step_row.start_ns)
    skew = {str(step): max(values) - min(values) for step, values in starts.items() if len(values) > 1}
    if skew:  # how far apart the ranks began each step, on the common clock
        metadata["step_skew_ns"] = skew
    step_ns = sum(s.duration_ns for s in steps)
    base_ns = step_ns or _ns(span_us) or 1
    region_rows = sorted(
        (RegionRow(name, int(c), _ns(t), _ns(s), _ns(s) / base_ns) for name, (c, t, s) in regions.items()),
        key=lambda r: r.total_ns, reverse=True,
    )
    memory_rows = [MemoryRow(label, int(a), int(r)) for label, (a, r) in sorted(memory.items())]
    return TraceSummary(
        rows, _op_rows(ops, "cpu", top), _op_rows(ops, "device", top), region_rows, steps, memory_rows, metadata,
        sync_ops=_op_rows(ops, "sync", 0),
        device_time=[entry for source in sources for entry in source.device_time],
        device_time_stated=[entry for source in sources for entry in source.stated],
    )


def _ns(us: float) -> int:
    return int(round(us * 1000))


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"
