"""Summarize traces: top ops by self time (CPU and device), regions, steps, memory peaks, device time.

``summarize(path)`` streams every trace ``path`` names (a file, or a directory
of them), so memory does not grow with trace size. Durations in the result are
integer nanoseconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
from typing import Any, Iterable, Iterator, Sequence

from npuprofile.analysis.collect import Source, collect
from npuprofile.analysis.events import Progress
from npuprofile.analysis.runinfo import trace_facts
from npuprofile.summary.model import (
    DEVICE,
    HOST,
    SYNC,
    MemoryRow,
    OpRow,
    RegionRow,
    SourceRow,
    StepRow,
    StepTimeline,
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
        clock = "host" if kind == HOST else "device"
        rows += [OpRow(name, int(c), kind=kind, rank=rank, share=own / total_self,
                       **{f"self_{clock}_ns": _ns(own), f"total_{clock}_ns": _ns(t)})
                 for name, (c, t, own) in ranked]
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
    timelines: list[StepTimeline] = []
    for index, source in enumerate(sources):
        rows.append(SourceRow(str(source.path), source.layout, source.size, source.events, source.rank,
                              str(source.session_path) if source.session_path else None))
        session_meta = source.session_metadata
        if session_meta and not metadata:
            metadata.update({k: v for k, v in session_meta.items() if k != "trace_paths"})
        if source.metadata:
            metadata.setdefault("trace", trace_facts(source.metadata))
        for kind, table in ((HOST, source.cpu_ops), (DEVICE, source.device_ops), (SYNC, source.sync_ops)):
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
            steps.append(StepRow(number, _ns(dur), {name: _ns(value) for name, value in per_region.items()},
                                 start_ns=start, rank=source.rank, source=index))
        timeline = source.timeline
        if timeline is not None:
            step_ts = next((ts for number, ts, _ in source.steps if number == timeline.step), origin_ts)
            start = int(round((source.base_ns - origin_base) + (step_ts - origin_ts) * 1000))
            timelines.append(dataclasses.replace(timeline, rank=source.rank, start_ns=start, source=index))
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
        if step_row.rank is not None and step_row.start_ns is not None:
            starts.setdefault(step_row.step, []).append(step_row.start_ns)
    skew = {str(step): max(values) - min(values) for step, values in starts.items() if len(values) > 1}
    if skew:  # how far apart the ranks began each step, on the common clock
        metadata["step_skew_ns"] = skew
    step_ns = sum(s.duration_ns for s in steps)
    base_ns = step_ns or _ns(span_us) or 1
    region_rows = sorted((_region_row(name, int(c), _ns(t), _ns(s), base_ns) for name, (c, t, s) in regions.items()),
                         key=lambda r: r.total_ns, reverse=True)
    memory_rows = [MemoryRow(label, int(a), int(r)) for label, (a, r) in sorted(memory.items())]
    return TraceSummary(
        regions=region_rows,
        ops=[*_op_rows(ops, HOST, top), *_op_rows(ops, DEVICE, top), *_op_rows(ops, SYNC, 0)],
        steps=steps,
        metadata=metadata,
        memory=memory_rows,
        sources=rows,
        device_time=[entry for source in sources for entry in source.device_time],
        device_time_stated=[entry for source in sources for entry in source.stated],
        timelines=timelines,
    )


def _region_row(name: str, count: int, total_ns: int, self_ns: int, step_ns: int) -> RegionRow:
    """A region of a trace: no samples per call, so no spread or percentiles; a share of step time instead."""
    return RegionRow(name, count, total_ns, self_ns, mean_ns=total_ns / count if count else 0.0, share=self_ns / step_ns)


def _ns(us: float) -> int:
    return int(round(us * 1000))
