"""Merge the per-rank Chrome traces of one run into one trace, streaming.

Each rank gets one process lane (``pid`` = the rank, named ``rank N`` plus its
coordinates such as ``tp0-dp1``, and sorted by rank, or by the coordinates
named in ``group_by`` first). The pseudo-processes torch adds (``Spans``, ``Traces``) fold
into the rank's lane; other real processes of a rank (a device lane, the many
lanes of a torch_npu ``trace_view.json``) become lanes named ``rank N: <name>``
sorted just below it. Flow and async ids are made unique per rank so arrows
never join two ranks.

Clocks (``align``):

- ``"clock"`` (default): torch traces give ``ts`` in microseconds after the
  file's ``baseTimeNanoseconds``; every event is moved onto one base, the
  earliest of all files, written as the output's ``baseTimeNanoseconds``. Ranks
  on one host share a clock, so their events line up exactly; across hosts the
  alignment is as good as the hosts' clock synchronisation (NTP, PTP). A file
  without ``baseTimeNanoseconds`` (``trace_view.json``) is taken to hold
  absolute microseconds.
- ``"none"``: timestamps are copied as they are.

Memory does not grow with the input: events are read in chunks
(:mod:`npuprofile.analysis.events`) and written out as they come. Each input
file's top-level keys (``distributedInfo``, ``deviceProperties``, ...) are kept
under ``npuprofileMerge.files[i].metadata`` in the output.
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import os
import re
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Sequence

import orjson

from npuprofile.analysis.events import TraceFile
from npuprofile.analysis.layouts import TraceRules, trace_rules
from npuprofile.analysis.locate import lfs_pointer, rank_from_files
from npuprofile.errors import TraceError
from npuprofile.sessions.coords import WRITTEN, format_coords, read_coords
from npuprofile.sessions.files import atomic_write

logger = logging.getLogger("npuprofile")

__all__ = ["RankTrace", "MergeResult", "identify", "merge_traces", "ALIGN_MODES"]

ALIGN_MODES = ("clock", "none")
#: Process ids of the extra lanes of a rank (device lanes) start here, clear of any rank number.
SUBLANE_PID_BASE = 1_000_000_000
#: Lanes of different runs (``allow_mixed_runs``) are kept apart by this stride.
RUN_PID_STRIDE = 1_000_000
_ID_PHASES = frozenset("stfbenSTFNOD")
_PROCESS_META = frozenset(("process_name", "process_sort_index", "process_labels"))
_STEM = re.compile(
    r"^(?P<run>[A-Za-z0-9][A-Za-z0-9_.-]*?)\.rank(?P<rank>\d+)"
    rf"(?:\.(?P<coords>{WRITTEN}))?"
    r"(?:(?:\.(?P<stage>[A-Za-z][A-Za-z0-9-]*))?\.(?P<host>.+?)_(?P<pid>\d+)(?=\.|_\d+_\d+_[A-Za-z]\w*|$))?"
    r"(?:[._]|$)"
)
_WRITE_BATCH = 1 << 20
_ID_LIMIT = 2**63 - 1  # integer ids spread over the lanes must stay 64-bit integers (what JSON writers take)

Progress = Callable[[int, int], None]


@dataclasses.dataclass
class RankTrace:
    """One input file and what identifies it: run id, rank, the host process id, the clock base."""

    path: Path
    run_id: str | None
    rank: int
    pid: int | None
    base_ns: int | None
    size: int
    world_size: int | None = None
    #: The process that wrote it, when the name or the first event tells: (host, pid).
    process: tuple[Any, Any] | None = None
    #: What two copies of one file share: size, clock base, first event.
    fingerprint: tuple[Any, ...] = ()
    #: Tells apart the processes (or copies) of one (run, rank) pair when mixed runs are allowed.
    copy: int = 0
    #: The writer's coordinates (``{"tp": 0, "dp": 1}``), from the trace's ``npuprofile`` header or its name.
    coords: dict[str, int] = dataclasses.field(default_factory=dict)
    #: The engine stage the trace recorded, if it says.
    stage: str | None = None

    @property
    def run_key(self) -> str:
        """The run id, or ``"?"`` when the file does not say."""
        return self.run_id if self.run_id is not None else "?"


@dataclasses.dataclass
class MergeResult:
    """What :func:`merge_traces` wrote."""

    output: Path
    files: list[RankTrace]
    run_ids: list[str]
    ranks: list[int]
    events_in: int
    events_out: int
    reference_ns: int | None


def identify(path: str | os.PathLike[str], rules: TraceRules | None = None) -> RankTrace:
    """Read which run and rank wrote ``path``: from its name, else its ``distributedInfo``, else a
    rank file beside it that a backend's layout names (such as ``profiler_info_<rank>.json``).

    npuprofile names files ``<run_id>.rank<R>[.<coords>][.<stage>].<host>_<pid>...``;
    for a trace nested in a backend's output folder, an enclosing directory may
    carry the name. Coordinates and stage come from the trace's own
    ``npuprofile`` header when it has one. Reads only the start of the file,
    unless the clock base is stored after the events.
    """
    path = Path(path)
    pointer = lfs_pointer(path)
    if pointer:
        raise TraceError(pointer)
    trace = TraceFile(path)
    run_id = rank = pid = stage = None
    coords: dict[str, int] = {}
    for part in (path.name, *(p.name for p in list(path.parents)[:3])):
        match = _STEM.match(part)
        if match:
            run_id, rank = match["run"], int(match["rank"])
            pid = int(match["pid"]) if match["pid"] else None
            coords = read_coords(match["coords"]) or {} if match["coords"] else {}
            stage = match["stage"]
            break
    metadata, first = _head(trace)
    own = metadata.get("npuprofile")
    if isinstance(own, dict):
        if isinstance(own.get("coords"), dict):
            coords = {str(k): v for k, v in own["coords"].items() if isinstance(v, int) and not isinstance(v, bool)}
        stage = own.get("stage") if isinstance(own.get("stage"), str) else stage
    if trace.layout == "torch" and "baseTimeNanoseconds" not in metadata:
        metadata = trace.read_metadata()  # stored after the events: one extra pass, no events kept
    info = metadata.get("distributedInfo")
    info = info if isinstance(info, dict) else {}
    if rank is None and _whole(info.get("rank")):
        rank = info["rank"]
    if rank is None:
        rank = rank_from_files(path, rules)
    if rank is None:
        raise TraceError(
            f"{path}: cannot tell which rank wrote it (no distributedInfo, no rank file beside it, and the "
            "name does not follow '<run_id>.rank<N>.<host>_<pid>...'); rename it so"
        )
    base = metadata.get("baseTimeNanoseconds")
    base_ns = int(base) if isinstance(base, (int, float)) and abs(base) < 1e20 else None
    world = info.get("world_size")
    if pid is not None:
        process: tuple[Any, Any] | None = (match["host"] if match else None, pid)
    elif first is not None and isinstance(first.get("pid"), int):
        process = (None, first["pid"])
    else:
        process = None
    fingerprint = (trace.size, base_ns, orjson.dumps(first, option=orjson.OPT_SORT_KEYS) if first else b"")
    return RankTrace(path, run_id, rank, pid, base_ns, trace.size, world if _whole(world) else None, process,
                     fingerprint, coords=coords, stage=stage)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _head(trace: TraceFile) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The top-level keys before the events, and the first event."""
    events = trace.events()
    try:
        first = next(events, None)
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()
    return dict(trace.metadata), first


def merge_traces(
    paths: Iterable[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    run_id: str | None = None,
    allow_mixed_runs: bool = False,
    align: str = "clock",
    progress: Progress | None = None,
    group_by: Sequence[str] = (),
) -> MergeResult:
    """Merge per-rank traces into ``output`` (gzip-compressed when it ends in ``.gz``).

    ``run_id`` keeps only that run's files. Files of different runs are refused
    unless ``allow_mixed_runs`` (then each run's ranks get their own lanes); so
    are files whose ``distributedInfo`` states different world sizes, and two
    files of the same rank of one run.
    ``group_by`` names coordinates (``("tp", "dp")``) that order the lanes and
    head their labels (``tp0-dp1 | rank 3 pp0``); every file must have them.
    ``progress(bytes_done, bytes_total)`` is called as input is read. The output
    appears atomically: a reader never sees a half-written merge.
    """
    if align not in ALIGN_MODES:
        raise TraceError(f"align={align!r} is not allowed; allowed: {', '.join(ALIGN_MODES)}")
    group_by = tuple(group_by)
    rules = trace_rules()
    files = [identify(p, rules) for p in dict.fromkeys(Path(p) for p in paths)]
    if not files:
        raise TraceError("no trace files to merge")
    if run_id is not None:
        files = [f for f in files if f.run_id == run_id]
        if not files:
            raise TraceError(f"no trace of run {run_id!r} among the inputs")
    runs = sorted({f.run_key for f in files})
    if not allow_mixed_runs:
        _refuse_mixed(files, runs)
    for trace in files:
        missing = [key for key in group_by if key not in trace.coords]
        if missing:
            have = format_coords(tuple(trace.coords.items())) or "none"
            raise TraceError(f"group_by {list(group_by)}: {trace.path} has no coordinate {missing[0]!r} "
                             f"(its coordinates: {have}); write it with coords=... or group by others")
    files.sort(key=lambda f: (f.run_key, tuple(f.coords[key] for key in group_by), f.rank, str(f.path)))
    _number_copies(files)
    bases = [f.base_ns if f.base_ns is not None else 0 for f in files]
    reference = min(bases) if align == "clock" else None
    out = Path(output)
    writer = _Writer(files, runs, reference, progress, group_by)

    def write(tmp: Path) -> None:
        handle: BinaryIO
        with open(tmp, "wb") as raw:
            handle = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=5) if out.name.endswith(".gz") else raw  # type: ignore[assignment]
            try:
                writer.write(handle)
            finally:
                if handle is not raw:
                    handle.close()
            raw.flush()
            os.fsync(raw.fileno())

    atomic_write(out, write)
    return MergeResult(out, files, runs, sorted({f.rank for f in files}), writer.events_in, writer.events_out,
                       reference)


def _refuse_mixed(files: Sequence[RankTrace], runs: Sequence[str]) -> None:
    """Raise when the files cannot be one run: several run ids, world sizes, or a rank twice."""
    hint = "pass --allow-mixed-runs to merge them anyway"
    if len(runs) > 1:
        counts = ", ".join(f"{r} ({sum(f.run_key == r for f in files)} files)" for r in runs)
        raise TraceError(f"the traces belong to {len(runs)} runs: {counts}; pick one with --run-id or {hint}")
    worlds = sorted({f.world_size for f in files if f.world_size is not None})
    if len(worlds) > 1:
        raise TraceError(f"the traces come from runs of different sizes (world_size {', '.join(map(str, worlds))}); "
                         f"they are not one run; {hint}")
    by_rank: dict[int, list[RankTrace]] = {}
    for file in files:
        by_rank.setdefault(file.rank, []).append(file)
    for rank, group in sorted(by_rank.items()):
        processes = {f.process for f in group if f.process is not None}
        prints = [f.fingerprint for f in group]
        if len(processes) > 1 or len(set(prints)) < len(prints):
            names = ", ".join(str(f.path) for f in group)
            why = "written by different processes" if len(processes) > 1 else "copies of one trace"
            raise TraceError(f"rank {rank} appears in {len(group)} traces ({names}), {why}: traces of "
                             f"different runs, or a run recorded twice; {hint}")


def _number_copies(files: Sequence[RankTrace]) -> None:
    """Give each process of one (run, rank) pair, and each copy of a file, its own lane number."""
    identities: dict[tuple[str, int], list[Any]] = {}
    prints: dict[tuple[str, int], set[tuple[Any, ...]]] = {}
    for file in files:
        key = (file.run_key, file.rank)
        known = identities.setdefault(key, [])
        seen = prints.setdefault(key, set())
        if file.fingerprint in seen:
            identity: Any = ("copy", len(known))
        elif file.process is not None:
            identity = file.process
        else:
            identity = known[0] if known else ("unknown",)
        seen.add(file.fingerprint)
        if identity not in known:
            known.append(identity)
        file.copy = known.index(identity)


class _Lanes:
    """The output lanes of one rank: its own (``pid`` = rank) and any extra process of it."""

    def __init__(self, run_index: int, trace: RankTrace, lane_index: int, lanes_total: int, label: str,
                 position: int) -> None:
        self.host_pid = run_index * RUN_PID_STRIDE + trace.rank
        self.sort_base = run_index * RUN_PID_STRIDE + position * 1000
        self.label = label
        self.coords = dict(trace.coords)
        self.lane_index = lane_index
        self.lanes_total = lanes_total
        self.known: dict[Any, int] = {}
        self.host_source: Any = None
        self.announced = False


class _Writer:
    """Streams every input's events, rewritten, into one output file."""

    def __init__(self, files: Sequence[RankTrace], runs: Sequence[str], reference: int | None,
                 progress: Progress | None, group_by: Sequence[str] = ()) -> None:
        self.files = files
        self.group_by = tuple(group_by)
        self.runs = list(runs)
        self.reference = reference
        self.progress = progress
        self.total_bytes = sum(f.size for f in files) or 1
        self.events_in = 0
        self.events_out = 0
        self._next_sublane = SUBLANE_PID_BASE
        keys = sorted({(f.run_key, f.rank, f.copy) for f in files})
        self._lane_index = {key: i for i, key in enumerate(keys)}
        # lanes appear in the order of the (sorted) files: by coordinates of group_by, then rank
        order = list(dict.fromkeys((f.run_key, f.rank, f.copy) for f in files))
        self._position = {key: order.index(key) if self.group_by else key[1] for key in keys}
        self._lanes: dict[tuple[str, int, int], _Lanes] = {}
        self._file_meta: list[dict[str, Any]] = []

    def write(self, handle: BinaryIO) -> None:
        handle.write(b'{"traceEvents":[\n')
        batch: list[bytes] = []
        size = 0
        first = True
        done_before = 0
        for trace in self.files:
            count = 0
            for event in self._events(trace, done_before):
                data = orjson.dumps(event)
                batch.append(data if first else b",\n" + data)
                first = False
                size += len(data)
                count += 1
                if size >= _WRITE_BATCH:
                    handle.write(b"".join(batch))
                    batch.clear()
                    size = 0
            done_before += trace.size
            self.events_out += count
        handle.write(b"".join(batch))
        handle.write(b"\n],\n")
        tail: dict[str, Any] = {"displayTimeUnit": "ms"}
        if self.reference is not None:
            tail["baseTimeNanoseconds"] = self.reference
        tail["npuprofileMerge"] = {
            "version": 1,
            "run_ids": self.runs,
            "align": "clock" if self.reference is not None else "none",
            "reference_ns": self.reference,
            "lanes": [
                {"run_id": key[0] if key[0] != "?" else None, "rank": key[1], "pid": lanes.host_pid,
                 "name": lanes.label, "coords": lanes.coords}
                for key, lanes in sorted(self._lanes.items())
            ],
            "files": self._file_meta,
        }
        handle.write(orjson.dumps(tail)[1:])

    def _lanes_for(self, trace: RankTrace) -> _Lanes:
        key = (trace.run_key, trace.rank, trace.copy)
        lanes = self._lanes.get(key)
        if lanes is None:
            run_index = self.runs.index(trace.run_key) + trace.copy * len(self.runs)
            label = self._label(trace)
            if trace.copy:
                label += f" (copy {trace.copy + 1})"
            lanes = self._lanes[key] = _Lanes(run_index, trace, self._lane_index[key], len(self._lane_index), label,
                                              self._position[key])
        return lanes

    def _label(self, trace: RankTrace) -> str:
        """``rank 3 tp0-dp1-pp0``; with ``group_by=("tp", "dp")``: ``tp0-dp1 | rank 3 pp0``."""
        label = f"{trace.run_key} rank {trace.rank}" if len(self.runs) > 1 else f"rank {trace.rank}"
        grouped = tuple((key, trace.coords[key]) for key in self.group_by)
        rest = tuple((key, value) for key, value in trace.coords.items() if key not in self.group_by)
        if rest:
            label += f" {format_coords(rest)}"
        return f"{format_coords(grouped)} | {label}" if grouped else label

    def _events(self, trace: RankTrace, done_before: int) -> Iterator[dict[str, Any]]:
        lanes = self._lanes_for(trace)
        if not lanes.announced:
            lanes.announced = True
            yield from _lane_metadata(lanes.host_pid, lanes.label, lanes.sort_base)
        offset = 0.0
        if self.reference is not None:
            offset = ((trace.base_ns or 0) - self.reference) / 1000.0
        progress = None
        if self.progress is not None:
            report = self.progress
            total = self.total_bytes

            def progress(done: int, _size: int) -> None:
                report(done_before + done, total)

        source = TraceFile(trace.path)
        count = 0
        for event in source.events(progress):
            count += 1
            yield from self._rewrite(event, lanes, trace, offset + source.ts_origin_us)
        self.events_in += count
        self._file_meta.append({
            "path": str(trace.path), "run_id": trace.run_id, "rank": trace.rank, "events": count,
            "base_ns": trace.base_ns, "offset_us": offset, "metadata": source.metadata,
        })

    def _rewrite(self, event: dict[str, Any], lanes: _Lanes, trace: RankTrace, offset: float) -> Iterator[dict[str, Any]]:
        pid = event.get("pid")
        if pid.__class__ is not int:  # torch's pseudo-processes ("Spans", "Traces", ""): fold into the rank
            if event.get("ph") == "M" and event.get("name") in _PROCESS_META:
                return
            out_pid = lanes.host_pid
        else:
            if lanes.host_source is None:
                lanes.host_source = trace.pid if trace.pid is not None else pid
            if pid == lanes.host_source:
                if event.get("ph") == "M" and event.get("name") in ("process_name", "process_sort_index"):
                    return
                out_pid = lanes.host_pid
            else:
                known = lanes.known.get(pid)
                if known is None:
                    known = lanes.known[pid] = self._next_sublane
                    self._next_sublane += 1
                    yield from _lane_metadata(known, f"{lanes.label}: pid {pid}", lanes.sort_base + len(lanes.known))
                out_pid = known
                if event.get("ph") == "M":
                    name = event.get("name")
                    if name == "process_sort_index":
                        return
                    if name == "process_name":
                        args = event.get("args")
                        args = args if args.__class__ is dict else {}
                        event["args"] = dict(args, name=f"{lanes.label}: {args.get('name', pid)}")
        event["pid"] = out_pid
        if offset:
            ts = event.get("ts")
            if ts.__class__ is float or ts.__class__ is int:
                event["ts"] = ts + offset
        if "id" in event and event.get("ph") in _ID_PHASES:
            ident = event["id"]
            if ident.__class__ is int and abs(ident) < _ID_LIMIT // lanes.lanes_total:
                event["id"] = ident * lanes.lanes_total + lanes.lane_index
            else:  # text ids, and numbers that would not fit 64 bits once spread over the lanes
                event["id"] = f"{ident}:{lanes.lane_index}"
        yield event


def _lane_metadata(pid: int, name: str, sort_index: int) -> Iterator[dict[str, Any]]:
    yield {"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": name}}
    yield {"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0, "args": {"sort_index": sort_index}}
