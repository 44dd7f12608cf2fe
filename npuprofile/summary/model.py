"""The summary model: what every npuprofile result holds, as plain frozen dataclasses.

Session summaries, trace analysis, gathered all-ranks summaries and bench
results all produce one :class:`Summary`; the renderers of this package
(:mod:`.text`, :mod:`.json`, :mod:`.csv`, :mod:`.html`) each take one and return
a string. Durations are nanoseconds: integers, or floats for means, standard
deviations and percentiles. ``None`` marks a figure its producer cannot know
(a trace keeps no per-call samples, so its regions carry no percentiles; a
session knows no trace share).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, TypeVar

from npuprofile.core.stats import RegionStats
from npuprofile.errors import ConfigError

if TYPE_CHECKING:
    from npuprofile.backends.base import OpStat

#: Version of the JSON layout every summary file carries. Fields are only ever added within a version;
#: renaming, removing or changing the meaning of a field bumps it. Files without one are version 1.
SCHEMA_VERSION = 2

# What produced a summary (``Summary.kind``).
SESSION = "session"
TRACE = "trace"
ALL_RANKS = "all_ranks"
BENCH = "bench"
KINDS = (SESSION, TRACE, ALL_RANKS, BENCH)

# Where an op row was timed (``OpRow.kind``).
HOST = "cpu"
DEVICE = "device"
SYNC = "sync"
HOST_AND_DEVICE = "cpu+device"


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
_SCALARS = (int, float, str, bool, type(None))


def _fields(value: Any) -> dict[str, Any]:
    """A dataclass's fields as :func:`dataclasses.asdict` gives them (nested ones converted too), without
    its deep copy of what cannot change: a summary is written on the way out of every session."""
    cls = type(value)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(value))
    return {name: _plain(getattr(value, name)) for name in names}


def _plain(value: Any) -> Any:
    if type(value) in _SCALARS:
        return value
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple, rebuilt field by field
        return type(value)(*(_plain(item) for item in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    if isinstance(value, dict):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _fields(value)
    return copy.deepcopy(value)


class _Row:
    """A model row's JSON-ready view: its fields, plus what :attr:`derived` names."""

    derived: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (nanoseconds)."""
        data = _fields(self)
        for name in self.derived:
            data[name] = getattr(self, name)
        return data


@dataclasses.dataclass(frozen=True)
class RegionRow(_Row):
    """One region, all its calls together.

    ``self_ns`` excludes the regions nested inside; ``share`` is self time over
    the summed step time (trace analysis only).
    """

    name: str
    count: int
    total_ns: int
    self_ns: int
    mean_ns: float
    std_ns: float | None = None
    min_ns: int | None = None
    max_ns: int | None = None
    p50_ns: float | None = None
    p90_ns: float | None = None
    p95_ns: float | None = None
    p99_ns: float | None = None
    share: float | None = None
    #: False when the percentiles are estimates (more samples than the session keeps exactly).
    exact: bool = True

    #: The percentiles a row keeps (``p<q>_ns``).
    PERCENTILES = (50, 90, 95, 99)

    @classmethod
    def from_stats(cls, stats: RegionStats) -> RegionRow:
        """The row of a region's statistics (``exact`` says whether its percentiles are exact)."""
        data = stats.to_dict()
        return cls(
            name=data["name"], count=data["count"], total_ns=data["total_ns"], self_ns=data["self_ns"],
            mean_ns=data["mean_ns"], std_ns=data["std_ns"], min_ns=data["min_ns"], max_ns=data["max_ns"],
            p50_ns=data["p50_ns"], p90_ns=data["p90_ns"], p95_ns=data["p95_ns"], p99_ns=data["p99_ns"],
            exact=bool(getattr(stats, "exact", True)),
        )

    @property
    def has_distribution(self) -> bool:
        """Whether the row carries spread and percentiles (it came from every sample)."""
        return self.p50_ns is not None

    def percentile(self, q: int) -> float:
        """The ``q``-th percentile of the durations (``q`` one of :attr:`PERCENTILES`)."""
        value = getattr(self, f"p{q}_ns", None) if q in self.PERCENTILES else None
        if value is None:
            kept = ", ".join(str(p) for p in self.PERCENTILES) if self.has_distribution else "none (no samples)"
            raise ConfigError(f"percentile q={q!r} of region {self.name!r} is not kept; kept: {kept}")
        return float(value)


@dataclasses.dataclass(frozen=True)
class OpRow(_Row):
    """One operator (or kernel, or synchronization marker), all its calls together.

    ``kind`` says where it was timed: ``"cpu"`` (a host op of a trace),
    ``"device"`` (a kernel of a trace), ``"sync"`` (a synchronization marker on
    a device lane, timed on the device) or ``"cpu+device"`` (a profiler's op
    table, which times each op on both). ``rank`` is set where ops are tabled
    per rank; ``share`` is the row's self time over that of every op of its
    kind (and rank), where the producer knows it.
    """

    name: str
    count: int
    self_host_ns: int = 0
    total_host_ns: int = 0
    self_device_ns: int = 0
    total_device_ns: int = 0
    kind: str = HOST_AND_DEVICE
    rank: int | None = None
    share: float | None = None

    derived = ("self_ns", "total_ns")

    @classmethod
    def from_op_stat(cls, op: OpStat) -> OpRow:
        """The row of a backend's op-table entry."""
        return cls(op.name, op.count, op.self_host_ns, op.total_host_ns, op.self_device_ns, op.total_device_ns)

    @property
    def self_ns(self) -> int:
        """Self time over both clocks (for a row of one clock, that clock's self time)."""
        return self.self_host_ns + self.self_device_ns

    @property
    def total_ns(self) -> int:
        """Total time over both clocks (for a row of one clock, that clock's total time)."""
        return self.total_host_ns + self.total_device_ns


@dataclasses.dataclass(frozen=True)
class StepRow(_Row):
    """One step: its duration and the time of each region inside it.

    A session's steps hold each region's total time in the step; a trace's
    steps (``ProfilerStep#N``) hold self times. ``start_ns`` is the offset from
    the first step of the same trace (``None`` where unknown); ``source`` is
    the index of the trace file it came from.
    """

    index: int
    duration_ns: int
    regions: dict[str, int]
    start_ns: int | None = None
    rank: int | None = None
    source: int | None = None

    derived = ("step", "other_ns")

    @property
    def step(self) -> int:
        """The step number (the same as :attr:`index`)."""
        return self.index

    @property
    def other_ns(self) -> int:
        """Time in the step outside every region."""
        return max(0, self.duration_ns - sum(self.regions.values()))


#: The public name of a step row (``npuprofile.StepStat``).
StepStat = StepRow


@dataclasses.dataclass(frozen=True)
class MemoryRow(_Row):
    """Peak memory a device's allocator reported (``profile_memory=True`` traces), in bytes."""

    device: str
    peak_allocated: int
    peak_reserved: int


@dataclasses.dataclass(frozen=True)
class SourceRow(_Row):
    """One trace file that went into a summary."""

    path: str
    layout: str
    size_bytes: int
    events: int
    rank: int | None
    session_summary: str | None


@dataclasses.dataclass(frozen=True)
class RankView(_Row):
    """One rank of a gathered summary: whether it was profiled, its shared run facts and its regions."""

    rank: int
    selected: bool
    metadata: dict[str, Any]
    regions: list[RegionRow]


@dataclasses.dataclass(frozen=True)
class Straggler(_Row):
    """The slowest rank of one region: its total time and how far it lies above the median rank."""

    region: str
    rank: int
    total_ns: int
    median_ns: float

    derived = ("excess",)

    @property
    def excess(self) -> float:
        """Fraction by which the slowest rank's total exceeds the median rank's (0.25 = 25% slower)."""
        return self.total_ns / self.median_ns - 1.0 if self.median_ns > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class StreamTime(_Row):
    """One device stream: how many activities it ran, busy time, idle time within its span, host wait.

    Host wait is the part of idle time that ends with an activity launched after
    the previous one had ended (the device waited for the host).
    """

    stream: str
    activities: int
    busy_ns: int
    idle_ns: int
    host_wait_ns: int


@dataclasses.dataclass(frozen=True)
class KernelTypeTime(_Row):
    """Busy time during which exactly these kinds of activity ran (``compute+communication``: both at once).

    ``share`` is its part of the device's busy time; ``count`` and ``total_ns``
    (number and summed duration of the activities of that kind) are set on the
    rows of a single kind only.
    """

    kind: str
    time_ns: int
    share: float
    count: int = 0
    total_ns: int = 0


@dataclasses.dataclass(frozen=True)
class StepDeviceTime(_Row):
    """The device-time figures of the activities launched during one host step (see :class:`DeviceTime`)."""

    step: int
    span_ns: int
    busy_ns: int
    idle_ns: int
    idle_share: float
    compute_ns: int
    communication_ns: int
    memory_ns: int
    comm_overlapped_share: float | None


@dataclasses.dataclass(frozen=True)
class StatedDeviceTime(_Row):
    """Device time as a trace or its backend's tables state it (``step`` None: the whole capture).

    Kept beside :class:`DeviceTime` so the two can be checked against each other.
    """

    rank: int | None
    device: str
    source: str
    step: int | None
    compute_ns: int
    communication_ns: int
    communication_not_overlapped_ns: int
    idle_ns: int


@dataclasses.dataclass(frozen=True)
class DeviceTime(_Row):
    """How one device of one rank spent the traced time.

    ``span_ns`` runs from its first activity's start to its last one's end;
    ``busy_ns`` is the time at least one activity ran (overlaps counted once),
    ``idle_ns = span_ns - busy_ns`` and ``idle_share = idle_ns / span_ns``.
    ``compute_ns``, ``communication_ns`` and ``memory_ns`` are the busy time of
    each kind of activity; ``comm_overlapped_share`` is the part of
    communication time during which compute ran too (``None`` without
    communication). ``streams``, ``kernel_types`` and ``steps`` break the same
    time down per stream, per combination of kinds and per host step.
    """

    rank: int | None
    device: str
    span_ns: int
    busy_ns: int
    idle_ns: int
    idle_share: float
    compute_ns: int
    communication_ns: int
    memory_ns: int
    comm_overlapped_share: float | None
    streams: list[StreamTime] = dataclasses.field(default_factory=list)
    kernel_types: list[KernelTypeTime] = dataclasses.field(default_factory=list)
    steps: list[StepDeviceTime] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class TimelineItem(_Row):
    """One mark on a step timeline: an interval of a host thread or device stream.

    ``start_ns`` is the offset from the step's start (negative when it began
    before); ``kind`` is ``"region"`` or ``"op"`` on a host thread, the kind of
    activity (``"compute"``, ``"communication"``, ``"memory"``) on a stream;
    ``level`` is the nesting depth of a region (0 elsewhere). ``count`` above 1
    marks items too short to draw apart, merged into one: ``name`` is then the
    longest of them and ``dur_ns`` runs from the first one's start to the last
    one's end.
    """

    start_ns: int
    dur_ns: int
    name: str
    kind: str
    level: int = 0
    count: int = 1


@dataclasses.dataclass(frozen=True)
class TimelineRow(_Row):
    """One row of a step timeline: a host thread (``kind="host"``) or a device stream (``kind="device"``).

    ``merged`` counts the intervals that went into merged items, ``dropped``
    those left out because the row held its maximum of items.
    """

    lane: str
    kind: str
    items: list[TimelineItem]
    device: str | None = None
    merged: int = 0
    dropped: int = 0


@dataclasses.dataclass(frozen=True)
class StepTimeline(_Row):
    """The median step of one trace (by duration), drawn as rows of intervals.

    Host rows hold the step's regions and its outermost ops; device rows the
    activities launched during the step (so they may end after it).
    ``start_ns`` is on the clock of :attr:`StepRow.start_ns`; ``dropped_rows``
    counts rows left out (each row kind holds at most a fixed number of rows).
    """

    step: int
    duration_ns: int
    rows: list[TimelineRow]
    rank: int | None = None
    start_ns: int | None = None
    source: int | None = None
    dropped_rows: int = 0


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """The well-known run facts of a summary's metadata, typed (``None`` where absent).

    The metadata itself stays an open mapping: producers add their own keys
    (``options``, ``versions``, ``bench``, ``trace``...).
    """

    backend: str | None = None
    run_id: str | None = None
    rank: int | None = None
    world_size: int | None = None
    host: str | None = None
    pid: int | None = None
    started_at: float | None = None
    stopped_at: float | None = None
    steps: int | None = None
    warmup_steps: int | None = None
    degraded: list[str] = dataclasses.field(default_factory=list)
    compiled_regions: list[str] = dataclasses.field(default_factory=list)
    #: The process's place in the job's parallel splits (``{"tp": 0, "dp": 1}``); empty when not given.
    coords: dict[str, int] = dataclasses.field(default_factory=dict)
    #: The engine stage a capture recorded (``"decode"``), or ``None``.
    stage: str | None = None
    #: Where each region of ``compiled_regions`` was seen: the compiled functions (name, file and line).
    compiled_regions_where: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> RunInfo:
        """The facts of ``metadata`` whose values have the expected type."""
        def typed(key: str, *types: type) -> Any:
            value = metadata.get(key)
            return value if isinstance(value, types) and not isinstance(value, bool) else None

        def texts(key: str) -> list[str]:
            value = metadata.get(key)
            return [str(v) for v in value] if isinstance(value, (list, tuple)) else []

        def places(key: str) -> dict[str, list[str]]:
            value = metadata.get(key)
            if not isinstance(value, dict):
                return {}
            return {str(k): [str(p) for p in v] for k, v in value.items() if isinstance(v, (list, tuple))}

        coords = metadata.get("coords")
        return cls(
            coords={str(k): v for k, v in coords.items() if isinstance(v, int)} if isinstance(coords, dict) else {},
            stage=typed("stage", str),
            backend=typed("backend", str), run_id=typed("run_id", str), rank=typed("rank", int),
            world_size=typed("world_size", int), host=typed("host", str), pid=typed("pid", int),
            started_at=typed("started_at", int, float), stopped_at=typed("stopped_at", int, float),
            steps=typed("steps", int), warmup_steps=typed("warmup_steps", int),
            degraded=texts("degraded"), compiled_regions=texts("compiled_regions"),
            compiled_regions_where=places("compiled_regions_where"),
        )


class Rendered:
    """``str()``, :meth:`to_dict`, :meth:`to_json` and :meth:`to_csv` of a result: its model, rendered.

    The renderers load on first use, so a session that never prints pays nothing for them.
    """

    @property
    def model(self) -> Summary:
        """The summary this result renders."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """Everything, as plain JSON types (durations in nanoseconds)."""
        from npuprofile.summary import json

        return json.to_dict(self.model)

    def to_json(self, path: str | Path | None = None, *, indent: int = 2) -> str:
        """The summary as JSON; also written atomically to ``path`` when given."""
        from npuprofile.summary import json

        return json.render(self.model, path, indent=indent)

    def to_csv(self, path: str | Path | None = None) -> str:
        """Regions, steps and ops as one CSV table; also written atomically to ``path`` when given."""
        from npuprofile.summary import csv

        return csv.render(self.model, path)

    def text(self) -> str:
        """The summary as readable text."""
        from npuprofile.summary import text

        return text.render(self.model)

    def __str__(self) -> str:
        return self.text()


_S = TypeVar("_S", bound="Summary")


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Summary(Rendered):
    """What a profile found: regions, ops, steps, memory, device time and, when gathered, ranks.

    ``Session.summary()`` returns one (``kind="session"``); trace analysis,
    gathered summaries and bench results are its subclasses or hold one.
    ``str(summary)`` is a readable report; :meth:`to_dict` is JSON-ready;
    :meth:`to_json` and :meth:`to_csv` write files.
    """

    regions: list[RegionRow] = dataclasses.field(default_factory=list)
    ops: list[OpRow] = dataclasses.field(default_factory=list)
    steps: list[StepRow] = dataclasses.field(default_factory=list)
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    kind: str = SESSION
    #: The region a bench measured (``kind="bench"``).
    name: str | None = None
    memory: list[MemoryRow] = dataclasses.field(default_factory=list)
    sources: list[SourceRow] = dataclasses.field(default_factory=list)
    ranks: list[RankView] = dataclasses.field(default_factory=list)
    #: The slowest rank of each region run by two or more ranks, by region name.
    stragglers: dict[str, Straggler] = dataclasses.field(default_factory=dict)
    #: Per rank and device: busy, idle and overlap of device time (empty when unknown).
    device_time: list[DeviceTime] = dataclasses.field(default_factory=list)
    #: Device time as the trace or the backend's tables state it, when they do.
    device_time_stated: list[StatedDeviceTime] = dataclasses.field(default_factory=list)
    #: Trace events that arrived too far out of order to be nested.
    late_events: int = 0
    #: The median step of each trace, as a timeline of its host threads and device streams.
    timelines: list[StepTimeline] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"kind={self.kind!r} is not allowed; allowed: {', '.join(KINDS)}")

    @classmethod
    def from_stats(
        cls: type[_S],
        regions: Iterable[RegionStats],
        ops: Iterable[OpRow | OpStat] = (),
        steps: Iterable[StepRow] = (),
        metadata: dict[str, Any] | None = None,
        **fields: Any,
    ) -> _S:
        """A summary of region statistics (rows by total time, longest first) and a backend's ops."""
        rows = sorted((RegionRow.from_stats(stats) for stats in regions), key=lambda r: r.total_ns, reverse=True)
        op_rows = [op if isinstance(op, OpRow) else OpRow.from_op_stat(op) for op in ops]
        return cls(regions=rows, ops=op_rows, steps=list(steps), metadata=dict(metadata or {}), **fields)

    @property
    def model(self) -> Summary:
        return self

    @property
    def run(self) -> RunInfo:
        """The typed run facts of :attr:`metadata`."""
        return RunInfo.from_metadata(self.metadata)

    @property
    def step_time_ns(self) -> int:
        """Sum of all step durations."""
        return sum(step.duration_ns for step in self.steps)

    def region(self, name: str) -> RegionRow:
        """One region's row by name (``KeyError`` if it never ran)."""
        for row in self.regions:
            if row.name == name:
                return row
        raise KeyError(f"no region named {name!r}; regions: {[r.name for r in self.regions]}")

    def __contains__(self, name: object) -> bool:
        return any(row.name == name for row in self.regions)

    def ops_of(self, kind: str) -> list[OpRow]:
        """The op rows of one kind: ``"cpu"``, ``"device"``, ``"sync"`` or ``"cpu+device"``."""
        return [op for op in self.ops if op.kind == kind]

    # -- text views (see npuprofile.summary.text) -----------------------------------------
    def headline(self) -> str:
        """One line: what was summarized and the run it came from."""
        from npuprofile.summary import text

        return text.headline(self)

    def region_table(self) -> str:
        """The regions as a text table."""
        from npuprofile.summary import text

        return text.region_table(self)

    def op_table(self, kind: str | None = None) -> str:
        """The ops of one kind as a text table (``"cpu"``, ``"device"``, ``"sync"``; default ``"cpu+device"``)."""
        from npuprofile.summary import text

        return text.op_table(self, kind)

    def step_table(self, columns: int = 6) -> str:
        """Steps with the time of the ``columns`` busiest regions."""
        from npuprofile.summary import text

        return text.step_table(self, columns)

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} kind={self.kind} regions={len(self.regions)} ops={len(self.ops)} "
                f"steps={len(self.steps)}>")


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class TraceSummary(Summary):
    """What trace analysis (:func:`npuprofile.analysis.summarize`) returns: a summary read from trace files."""

    kind: str = TRACE

    @property
    def cpu_ops(self) -> list[OpRow]:
        """Top host ops by self time."""
        return self.ops_of(HOST)

    @property
    def device_ops(self) -> list[OpRow]:
        """Top device kernels by self time."""
        return self.ops_of(DEVICE)

    @property
    def sync_ops(self) -> list[OpRow]:
        """Synchronization markers on device lanes."""
        return self.ops_of(SYNC)

    def __repr__(self) -> str:
        return (f"<TraceSummary sources={len(self.sources)} regions={len(self.regions)} steps={len(self.steps)} "
                f"cpu_ops={len(self.cpu_ops)} device_ops={len(self.device_ops)}>")


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class AllRanksSummary(Summary):
    """A summary of every rank of a distributed job: aggregate rows plus one view per rank.

    ``regions`` holds the statistics merged over all ranks (counts and totals
    are sums, percentiles are over every rank's samples); ``ranks`` holds one
    :class:`RankView` per rank, profiled or not; ``stragglers`` names the
    slowest rank (by total time) of each region run by two or more ranks.
    ``steps`` are per step index the slowest rank's step, since a synchronous
    job moves at its slowest rank.
    """

    kind: str = ALL_RANKS

    @property
    def per_rank(self) -> dict[int, list[RegionRow]]:
        """Each profiled rank's own region rows."""
        return {view.rank: view.regions for view in self.ranks if view.selected}

    def rank_region(self, rank: int, name: str) -> RegionRow:
        """The row of region ``name`` on ``rank`` (``KeyError`` if that rank never ran it)."""
        for row in self.per_rank.get(rank, ()):
            if row.name == name:
                return row
        raise KeyError(f"rank {rank} has no region named {name!r}; profiled ranks: {sorted(self.per_rank)}")

    def rank_table(self) -> str:
        """One row per region and rank; the slowest rank of each region is flagged."""
        from npuprofile.summary import text

        return text.rank_table(self)

    def __repr__(self) -> str:
        return f"<AllRanksSummary ranks={sorted(self.per_rank)} regions={len(self.regions)}>"


#: The class of each kind of summary (a bench result's summary is a plain :class:`Summary`).
CLASSES: dict[str, type[Summary]] = {SESSION: Summary, BENCH: Summary, TRACE: TraceSummary, ALL_RANKS: AllRanksSummary}
