"""Summarize traces: top ops by self time (CPU and device), regions, steps, memory peaks.

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

from npuprofile.analysis.aggregate import Aggregator
from npuprofile.analysis.events import Progress, TraceFile, find_traces
from npuprofile.analysis.runinfo import find_session_summary, load_session_summary, rank_of, trace_facts
from npuprofile.sessions.files import atomic_write_text
from npuprofile.summary.model import dumps_json, format_ns, render_table

__all__ = ["OpRow", "RegionRow", "StepRow", "MemoryRow", "SourceRow", "TraceSummary", "summarize", "build_summary"]

DEFAULT_TOP = 20
_DEVICE_TYPES = {0: "cpu", 1: "cuda", 20: "privateuse1"}


@dataclasses.dataclass(frozen=True)
class OpRow:
    """One operator (or kernel), all its calls together."""

    name: str
    kind: str  # "cpu" or "device"
    count: int
    self_ns: int
    total_ns: int

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
    """One ``ProfilerStep#N``: when it started (from the first step of its trace), how long, and its regions' self times."""

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
    ) -> None:
        self.sources = list(sources)
        self.cpu_ops = list(cpu_ops)
        self.device_ops = list(device_ops)
        self.regions = list(regions)
        self.steps = list(steps)
        self.memory = list(memory)
        self.metadata = dict(metadata)
        self.late_events = late_events

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
        for o in (*self.cpu_ops, *self.device_ops):
            writer.writerow({"section": "op", "name": o.name, "kind": o.kind, "count": o.count,
                             "total_ns": o.total_ns, "self_ns": o.self_ns})
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
            rows.append([label, format_ns(s.duration_ns), *(format_ns(s.regions.get(n, 0)) for n in names),
                         format_ns(s.other_ns)])
        return render_table(("step", "duration", *names, "other"), rows)

    def op_table(self, kind: str) -> str:
        """The top ops of one kind (``"cpu"`` or ``"device"``) as a text table."""
        ops = self.cpu_ops if kind == "cpu" else self.device_ops
        total = sum(o.self_ns for o in ops) or 1
        rows = [[o.name[:70], str(o.count), format_ns(o.self_ns), f"{100 * o.self_ns / total:.1f}%",
                 format_ns(o.total_ns)] for o in ops]
        return render_table((f"{kind} op", "count", "self", "self %", "total"), rows)

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
) -> TraceSummary:
    """Stream the trace(s) at ``path`` (a file, a directory, or several) into a :class:`TraceSummary`.

    ``progress(bytes_done, bytes_total)`` is called as the files are read. The
    cyclic garbage collector is paused meanwhile (the events are acyclic, and
    collections triggered by millions of fresh dicts would double the time).
    """
    with _gc_paused():
        return _summarize(path, top, progress)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _summarize(path: Any, top: int, progress: Progress | None) -> TraceSummary:
    if isinstance(path, (str, os.PathLike)):
        files = find_traces(path)
    else:
        files = [f for p in path for f in find_traces(p)]
    total = sum(f.stat().st_size for f in files)
    done = 0
    parts = []
    for file in files:
        session_path = find_session_summary(file)
        session = load_session_summary(session_path) if session_path else None
        names = [r.get("name") for r in (session or {}).get("regions", []) if isinstance(r, dict)]
        trace = TraceFile(file)
        report = None
        if progress is not None:
            offset = done

            def report(current: int, _size: int, offset: int = offset) -> None:
                progress(offset + current, total)

        aggregator = Aggregator([n for n in names if isinstance(n, str)]).feed_all(trace.events(report))
        aggregator.finish()
        done += trace.size
        parts.append((trace, aggregator, session_path, session))
    if progress is not None:
        progress(total, total)
    return build_summary(parts, top=top)


def build_summary(
    parts: Sequence[tuple[TraceFile, Aggregator, Path | None, dict[str, Any] | None]], *, top: int = DEFAULT_TOP
) -> TraceSummary:
    """Combine finished aggregators (one per trace file) into a :class:`TraceSummary`."""
    sources: list[SourceRow] = []
    ops: dict[tuple[str, str], list[float]] = {}
    regions: dict[str, list[float]] = {}
    steps: list[StepRow] = []
    memory: dict[str, list[float]] = {}
    metadata: dict[str, Any] = {}
    late = 0
    span_us = 0.0
    for index, (trace, agg, session_path, session) in enumerate(parts):
        session_meta = (session or {}).get("metadata") if isinstance((session or {}).get("metadata"), dict) else None
        rank = rank_of(trace.metadata, session_meta)
        sources.append(SourceRow(str(trace.path), trace.layout or "?", trace.size, trace.events_read, rank,
                                 str(session_path) if session_path else None))
        if session_meta and not metadata:
            metadata.update({k: v for k, v in session_meta.items() if k != "trace_paths"})
        metadata.setdefault("trace", trace_facts(trace.metadata))
        late += agg.late_events
        for (pid, cat, name), (count, total, own) in agg.ops.items():
            kind = agg.op_kind(pid, cat)
            if kind is None:
                continue
            row = ops.setdefault((kind, name), [0, 0.0, 0.0])
            row[0] += count
            row[1] += total
            row[2] += own
        for name, (count, total, own) in agg.regions.items():
            row = regions.setdefault(name, [0, 0.0, 0.0])
            row[0] += count
            row[1] += total
            row[2] += own
        first = min((ts for _, _, ts, _ in agg.steps), default=0.0)
        for number, pid, ts, dur in sorted(agg.steps, key=lambda s: s[2]):
            per_region = agg.step_regions.get((pid, number), {})
            steps.append(StepRow(index, rank, number, _ns(ts - first), _ns(dur),
                                 {name: _ns(value) for name, value in per_region.items()}))
        if agg.last_ts > agg.first_ts:
            span_us += agg.last_ts - agg.first_ts
        for (device_type, device_id), (allocated, reserved) in agg.memory.items():
            label = f"{_DEVICE_TYPES.get(device_type, device_type)}:{device_id}" if device_id not in (None, -1) \
                else str(_DEVICE_TYPES.get(device_type, device_type))
            peaks = memory.setdefault(label, [0.0, 0.0])
            peaks[0] = max(peaks[0], allocated)
            peaks[1] = max(peaks[1], reserved)
    ranks = sorted({s.rank for s in sources if s.rank is not None})
    metadata["ranks"] = ranks
    step_ns = sum(s.duration_ns for s in steps)
    base_ns = step_ns or _ns(span_us) or 1
    region_rows = sorted(
        (RegionRow(name, int(c), _ns(t), _ns(s), _ns(s) / base_ns) for name, (c, t, s) in regions.items()),
        key=lambda r: r.total_ns, reverse=True,
    )

    def top_ops(kind: str) -> list[OpRow]:
        rows = [OpRow(name, kind, int(c), _ns(s), _ns(t)) for (k, name), (c, t, s) in ops.items() if k == kind]
        rows.sort(key=lambda r: r.self_ns, reverse=True)
        return rows[:top] if top > 0 else rows

    memory_rows = [MemoryRow(label, int(a), int(r)) for label, (a, r) in sorted(memory.items())]
    return TraceSummary(sources, top_ops("cpu"), top_ops("device"), region_rows, steps, memory_rows, metadata, late)


def _ns(us: float) -> int:
    return int(round(us * 1000))


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"
