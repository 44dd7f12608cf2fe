"""Read every input of a summary: traces (streamed and aggregated) and backend tables, one :class:`Source` each.

A source knows its rank (the session summary's, else the trace's
``distributedInfo``, else a rank file the layouts name, such as
``profiler_info_<rank>.json``) and its clock base (``baseTimeNanoseconds``:
torch writes ``ts`` in microseconds after it; without it ``ts`` are taken as
absolute), so steps of different ranks can be put on one clock.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from npuprofile.analysis.aggregate import Aggregator
from npuprofile.analysis.device_time import DeviceTime
from npuprofile.analysis.events import Progress, TraceFile, TraceLimitError
from npuprofile.analysis.layouts import TraceRules, trace_rules
from npuprofile.analysis.locate import find_tables, find_traces, lfs_pointer, rank_from_files
from npuprofile.analysis.runinfo import SummaryIndex, rank_of
from npuprofile.analysis.tables import StatedDeviceTime, read_tables, stated_from_overlap
from npuprofile.errors import TraceError
from npuprofile.summary.model import StepTimeline

__all__ = ["Source", "collect", "source_from_trace"]


@dataclasses.dataclass
class Source:
    """One input's results (durations in microseconds, as the aggregator gives them)."""

    path: Path
    layout: str
    size: int
    events: int
    rank: int | None
    session_path: Path | None
    session: dict[str, Any] | None
    metadata: dict[str, Any]
    base_ns: int
    cpu_ops: dict[str, list[float]]
    device_ops: dict[str, list[float]]
    sync_ops: dict[str, list[float]]
    regions: dict[str, list[float]]
    steps: list[tuple[int, float, float]]
    step_regions: dict[int, dict[str, float]]
    memory: dict[tuple[Any, Any], list[float]]
    device_time: list[DeviceTime]
    stated: list[StatedDeviceTime]
    first_ts: float
    last_ts: float
    malformed: int = 0
    timeline: StepTimeline | None = None

    @property
    def session_metadata(self) -> dict[str, Any] | None:
        """The session summary's ``metadata`` object, if there is one."""
        meta = (self.session or {}).get("metadata")
        return meta if isinstance(meta, dict) else None


def _base_ns(metadata: dict[str, Any]) -> int:
    base = metadata.get("baseTimeNanoseconds")
    if isinstance(base, bool) or not isinstance(base, (int, float)) or not abs(base) < 1e20:
        return 0
    return int(base)


def source_from_trace(trace: TraceFile, agg: Aggregator, session_path: Path | None = None,
                      session: dict[str, Any] | None = None, rank: int | None = None,
                      stated: Sequence[StatedDeviceTime] = ()) -> Source:
    """A :class:`Source` from a finished aggregator of ``trace``."""
    device_time = [dataclasses.replace(entry, rank=rank) for entry in agg.device_time]
    stated = list(stated)
    if agg.overlap:
        device = device_time[0].device if len(device_time) == 1 else "device"
        overlap = stated_from_overlap(agg.overlap, device, rank)
        if overlap is not None:
            stated.insert(0, overlap)
    return Source(
        path=trace.path, layout=trace.layout or "?", size=trace.size, events=trace.events_read, rank=rank,
        session_path=session_path, session=session, metadata=trace.metadata,
        base_ns=_base_ns(trace.metadata) + trace.ts_origin_us * 1000,
        cpu_ops=agg.cpu_ops, device_ops=agg.device_ops, sync_ops=agg.sync_ops, regions=agg.regions,
        steps=agg.steps, step_regions=agg.step_regions, memory=agg.memory, device_time=device_time,
        stated=stated, first_ts=agg.first_ts, last_ts=agg.last_ts, malformed=agg.malformed,
        timeline=agg.timeline,
    )


def collect(
    path: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    progress: Progress | None = None,
    include_last_step: bool = False,
    rules: TraceRules | None = None,
) -> list[Source]:
    """Every source ``path`` names: each trace, and each directory of tables no trace sits beside."""
    rules = rules if rules is not None else trace_rules()
    roots = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    traces: list[Path] = []
    tables: list[Path] = []
    for root in roots:
        found_tables = find_tables(root, rules)
        try:
            traces += find_traces(root, rules)
        except TraceError:
            if not found_tables or (Path(root).is_file() and lfs_pointer(Path(root))):
                raise
        tables += found_tables
    table_set = set(tables)
    traces = [t for t in dict.fromkeys(traces) if t not in table_set]
    total = sum(t.stat().st_size for t in traces) or 1
    done = 0
    sources: list[Source] = []
    beside: dict[Path, list[Path]] = {}
    for table in dict.fromkeys(tables):
        beside.setdefault(table.parent, []).append(table)
    index = SummaryIndex()  # each directory listed, each session summary read, once
    for file in traces:
        session_path = index.find(file)
        session = index.load(session_path) if session_path else None
        names = [r.get("name") for r in (session or {}).get("regions", []) if isinstance(r, dict)]
        trace = TraceFile(file)
        report = None
        if progress is not None:
            offset = done

            def report(current: int, _size: int, offset: int = offset) -> None:
                progress(offset + current, total)

        agg = Aggregator([n for n in names if isinstance(n, str)], rules=rules, include_last_step=include_last_step)
        try:
            agg.feed_all(trace.events(report)).finish()
        except TraceLimitError as exc:  # a limit of the nesting, which knows no file: name it
            if str(file) in str(exc):
                raise
            raise TraceLimitError(f"{file}: {exc}") from None
        done += trace.size
        meta = (session or {}).get("metadata")
        rank = rank_of(trace.metadata, meta if isinstance(meta, dict) else None)
        if rank is None:
            rank = rank_from_files(file, rules)
        near = beside.pop(file.parent, [])
        stated = read_tables(near, rules, rank, with_activities=False) if near else None
        sources.append(source_from_trace(trace, agg, session_path, session, rank, stated.stated if stated else ()))
    for directory, files in sorted(beside.items()):
        rank = rank_from_files(files[0], rules)
        result = read_tables(files, rules, rank)
        if result is None:
            continue
        sources.append(Source(
            path=directory, layout="tables", size=sum(f.stat().st_size for f in result.files), events=result.rows,
            rank=rank, session_path=None, session=None, metadata={}, base_ns=0, cpu_ops={},
            device_ops=result.device_ops, sync_ops={}, regions={}, steps=[], step_regions={}, memory={},
            device_time=result.device_time, stated=result.stated, first_ts=float("inf"), last_ts=float("-inf"),
        ))
    if progress is not None:
        progress(total, total)
    if not sources:
        raise TraceError(f"{roots[0] if len(roots) == 1 else roots}: no trace or table files found")
    return sources
