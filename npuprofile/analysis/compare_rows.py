"""What a comparison compares: the rows of one summary, each with the samples it can be tested on.

Every kind of row is one function from a :class:`~npuprofile.summary.model.Summary`
to :class:`Measure` objects, listed in :data:`ROW_KINDS`; a new kind (per-step
device figures, say) is one more function there. A measure carries its
samples by basis: ``"step"`` (the row's time in each step) and ``"call"``
(every call's duration, summarized by count, mean and spread). A comparison
uses the first basis, in :data:`BASES` order, that both sides have.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterator

from npuprofile.analysis.welch import Moments
from npuprofile.summary.model import DEVICE, SYNC, Summary

STEP = "step"
CALL = "call"
#: Bases in order of preference: per-step samples also see what varies between calls of one step.
BASES = (STEP, CALL)

REGION = "region"
OP = "op"
KERNEL = "kernel"


@dataclasses.dataclass(frozen=True)
class Measure:
    """One row of one side: calls, total and mean per call, and samples by basis.

    ``mean_ns`` and ``total_ns`` describe the row as the summary lists it
    (shown when no basis is shared); ``samples[basis]`` are the moments a test
    uses. A region's samples per step are its time in each step where the
    summary's steps carry it, zero in the steps it did not run in.
    """

    kind: str
    name: str
    rank: int | None
    count: int
    total_ns: float
    mean_ns: float
    samples: dict[str, Moments] = dataclasses.field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, int | None]:
        """What rows are matched by: kind, name and (for per-rank op tables) rank."""
        return self.kind, self.name, self.rank


def step_measures(summary: Summary) -> Iterator[Measure]:
    """The step itself: each step's duration."""
    if summary.steps:
        moments = Moments.of(step.duration_ns for step in summary.steps)
        yield Measure(STEP, STEP, None, moments.n, moments.total, moments.mean, {STEP: moments})


def region_measures(summary: Summary) -> Iterator[Measure]:
    """Regions: per-step times where the steps carry them, per-call spread where the row keeps it."""
    names = {name for step in summary.steps for name in step.regions}
    per_step = {name: [float(step.regions.get(name, 0)) for step in summary.steps] for name in names}
    for row in summary.regions:
        samples: dict[str, Moments] = {}
        if row.name in per_step:
            samples[STEP] = Moments.of(per_step[row.name])
        if row.std_ns is not None and row.count > 0:
            samples[CALL] = Moments.from_spread(row.count, row.mean_ns, row.std_ns)
        yield Measure(REGION, row.name, None, row.count, row.total_ns, row.mean_ns, samples)


def op_measures(summary: Summary) -> Iterator[Measure]:
    """Host ops (and a profiler's op table): self time per call; summaries keep no samples of ops."""
    yield from _ops(summary, OP)


def kernel_measures(summary: Summary) -> Iterator[Measure]:
    """Device kernels and synchronization markers on device lanes: device self time per call."""
    yield from _ops(summary, KERNEL)


def _ops(summary: Summary, kind: str) -> Iterator[Measure]:
    # Ops are matched per rank only where a summary holds several: two one-rank runs compare by name
    # whatever rank each ran as.
    ranked = len({op.rank for op in summary.ops}) > 1
    for op in summary.ops:
        if (op.kind in (DEVICE, SYNC)) == (kind == KERNEL):
            rank = op.rank if ranked else None
            yield Measure(kind, op.name, rank, op.count, op.self_ns, op.self_ns / op.count if op.count else 0.0)


#: Each kind of row and the function that lists a summary's rows of that kind, in display order.
ROW_KINDS: dict[str, Callable[[Summary], Iterator[Measure]]] = {
    STEP: step_measures,
    REGION: region_measures,
    OP: op_measures,
    KERNEL: kernel_measures,
}


def measures(summary: Summary) -> dict[tuple[str, str, int | None], Measure]:
    """Every row of ``summary`` of every kind, by key; rows of one key are added together (without samples)."""
    rows: dict[tuple[str, str, int | None], Measure] = {}
    for list_rows in ROW_KINDS.values():
        for measure in list_rows(summary):
            known = rows.get(measure.key)
            rows[measure.key] = measure if known is None else _added(known, measure)
    return rows


def _added(one: Measure, other: Measure) -> Measure:
    count = one.count + other.count
    total = one.total_ns + other.total_ns
    return Measure(one.kind, one.name, one.rank, count, total, total / count if count else 0.0)
