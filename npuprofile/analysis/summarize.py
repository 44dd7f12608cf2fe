"""Summarize traces: top ops by self time (CPU and device), regions, steps, memory peaks.

``summarize(path)`` streams every trace ``path`` names (a file, or a directory
of them), so memory does not grow with trace size. Durations in the result are
integer nanoseconds.
"""

from __future__ import annotations

import contextlib
import gc
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from npuprofile.analysis.aggregate import Aggregator
from npuprofile.analysis.events import Progress, TraceFile, find_traces
from npuprofile.analysis.runinfo import find_session_summary, load_session_summary, rank_of, trace_facts
from npuprofile.summary.model import (
    DEVICE,
    HOST,
    MemoryRow,
    OpRow,
    RegionRow,
    SourceRow,
    StepRow,
    TraceSummary,
)

__all__ = ["OpRow", "RegionRow", "StepRow", "MemoryRow", "SourceRow", "TraceSummary", "summarize", "build_summary"]

DEFAULT_TOP = 20
_DEVICE_TYPES = {0: "cpu", 1: "cuda", 20: "privateuse1"}


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
            steps.append(StepRow(number, _ns(dur), {name: _ns(value) for name, value in per_region.items()},
                                 start_ns=_ns(ts - first), rank=rank, source=index))
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
    region_rows = sorted((_region_row(name, int(c), _ns(t), _ns(s), base_ns) for name, (c, t, s) in regions.items()),
                         key=lambda r: r.total_ns, reverse=True)

    def top_ops(kind: str) -> list[OpRow]:
        clock = "host" if kind == HOST else "device"
        rows = [OpRow(name, int(c), kind=kind, **{f"self_{clock}_ns": _ns(s), f"total_{clock}_ns": _ns(t)})
                for (k, name), (c, t, s) in ops.items() if k == kind]
        rows.sort(key=lambda r: r.self_ns, reverse=True)
        return rows[:top] if top > 0 else rows

    memory_rows = [MemoryRow(label, int(a), int(r)) for label, (a, r) in sorted(memory.items())]
    return TraceSummary(regions=region_rows, ops=[*top_ops(HOST), *top_ops(DEVICE)], steps=steps,
                        metadata=metadata, memory=memory_rows, sources=sources, late_events=late)


def _region_row(name: str, count: int, total_ns: int, self_ns: int, step_ns: int) -> RegionRow:
    """A region of a trace: no samples per call, so no spread or percentiles; a share of step time instead."""
    return RegionRow(name, count, total_ns, self_ns, mean_ns=total_ns / count if count else 0.0, share=self_ns / step_ns)


def _ns(us: float) -> int:
    return int(round(us * 1000))
