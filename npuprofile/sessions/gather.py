"""Region statistics of every rank of a ``torch.distributed`` job, gathered on request.

``Session.summary(all_ranks=True)`` is a collective over the default process
group: every rank calls it (ranks not selected for profiling contribute an empty
entry), each rank's statistics travel once through ``all_gather_object``, and
every rank gets the same :class:`AllRanksSummary`. Exact percentiles need every
sample, so the exchange costs 8 bytes per recorded region per rank.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
from typing import Any, Mapping, Sequence

from npuprofile.backends.base import OpStat
from npuprofile.core.stats import RegionStats
from npuprofile.errors import SessionError
from npuprofile.sessions.distributed import _initialised_dist, rank_and_world_size
from npuprofile.summary.model import StepStat, Summary, format_ns, render_table

logger = logging.getLogger("npuprofile")

#: Metadata each rank shares (the rest stays local: options, versions, paths of other hosts).
SHARED_METADATA = ("rank", "host", "pid", "run_id", "backend", "steps", "degraded", "trace_paths")


@dataclasses.dataclass(frozen=True)
class RankPayload:
    """What one rank contributes to the gathered summary."""

    rank: int
    selected: bool
    metadata: dict[str, Any]
    regions: list[RegionStats]
    ops: list[OpStat]
    steps: list[StepStat]


@dataclasses.dataclass(frozen=True)
class Straggler:
    """The slowest rank of one region: its total time and how far it lies above the median rank."""

    region: str
    rank: int
    total_ns: int
    median_ns: float

    @property
    def excess(self) -> float:
        """Fraction by which the slowest rank's total exceeds the median rank's (0.25 = 25% slower)."""
        return self.total_ns / self.median_ns - 1.0 if self.median_ns > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {"region": self.region, "rank": self.rank, "total_ns": self.total_ns,
                "median_ns": self.median_ns, "excess": self.excess}


class AllRanksSummary(Summary):
    """A :class:`Summary` of every rank: aggregate rows plus one row per rank and region.

    ``regions`` holds the statistics merged over all ranks (counts and totals are
    sums, percentiles are over every rank's samples); ``per_rank`` maps each rank
    to its own statistics; ``stragglers`` names the slowest rank (by total time)
    of each region run by two or more ranks. ``steps`` are per step index the
    slowest rank's duration, since a synchronous job moves at its slowest rank.
    """

    def __init__(self, payloads: Sequence[RankPayload], metadata: Mapping[str, Any]) -> None:
        self.payloads = sorted(payloads, key=lambda p: p.rank)
        self.per_rank: dict[int, list[RegionStats]] = {p.rank: list(p.regions) for p in self.payloads if p.selected}
        aggregate: dict[str, RegionStats] = {}
        for regions in self.per_rank.values():
            for stats in regions:
                aggregate.setdefault(stats.name, RegionStats(stats.name)).merge(stats)
        meta = dict(metadata)
        meta["all_ranks"] = True
        meta["ranks"] = [dict(p.metadata, rank=p.rank, selected=p.selected) for p in self.payloads]
        super().__init__(list(aggregate.values()), _merge_ops(self.payloads), _slowest_steps(self.payloads), meta)
        self.stragglers: dict[str, Straggler] = _find_stragglers(self.per_rank)

    def rank_region(self, rank: int, name: str) -> RegionStats:
        """Statistics of region ``name`` on ``rank`` (``KeyError`` if that rank never ran it)."""
        for stats in self.per_rank.get(rank, ()):
            if stats.name == name:
                return stats
        raise KeyError(f"rank {rank} has no region named {name!r}; profiled ranks: {sorted(self.per_rank)}")

    def rank_table(self) -> str:
        """One row per region and rank; the slowest rank of each region is flagged."""
        rows = []
        for aggregate in self.regions:
            straggler = self.stragglers.get(aggregate.name)
            for rank, regions in self.per_rank.items():
                stats = next((s for s in regions if s.name == aggregate.name), None)
                if stats is None:
                    continue
                versus = ""
                if straggler is not None and straggler.median_ns > 0:
                    versus = f"{stats.total_ns / straggler.median_ns - 1.0:+.1%}"
                flag = "slowest" if straggler is not None and straggler.rank == rank else ""
                rows.append([aggregate.name, str(rank), str(stats.count), format_ns(stats.total_ns),
                             format_ns(stats.mean_ns), format_ns(stats.max_ns), versus, flag])
        return render_table(("region", "rank", "count", "total", "mean", "max", "vs median", ""), rows)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["per_rank"] = {str(rank): [s.to_dict() for s in regions] for rank, regions in self.per_rank.items()}
        out["stragglers"] = [s.to_dict() for s in self.stragglers.values()]
        return out

    def __str__(self) -> str:
        meta = self.metadata
        profiled = len(self.per_rank)
        head = (f"npuprofile summary: backend={meta.get('backend', '?')} run_id={meta.get('run_id', '?')} "
                f"ranks={profiled}/{meta.get('world_size', len(self.payloads))} (all ranks)")
        if self.steps:
            total = sum(s.duration_ns for s in self.steps)
            head += f" steps={len(self.steps)} (slowest rank, mean {format_ns(total / len(self.steps))})"
        parts = [head]
        degraded = [f"rank {p.rank}: {d}" for p in self.payloads for d in p.metadata.get("degraded") or ()]
        if degraded:
            parts.append("DEGRADED: " + "; ".join(degraded))
        if not self.regions:
            parts.append("(no regions recorded)")
            return "\n".join(parts)
        parts += ["all ranks:", self.region_table(), "", "per rank:", self.rank_table()]
        if self.stragglers:
            parts.append("")
            parts += [
                f"straggler: {s.region!r} is slowest on rank {s.rank} "
                f"({format_ns(s.total_ns)}, {s.excess:+.1%} vs the median rank)"
                for s in self.stragglers.values()
            ]
        if self.ops:
            parts += ["", self.op_table()]
        return "\n".join(parts)

    def __repr__(self) -> str:
        return f"<AllRanksSummary ranks={sorted(self.per_rank)} regions={len(self.regions)}>"


def gather_summary(local: Summary, *, selected: bool) -> AllRanksSummary:
    """Exchange ``local`` with every rank of the default group; return the combined summary.

    A collective: it blocks until every rank of the default group has called it.
    Without an initialised process group it returns this process alone, when
    the environment says the job has one rank, and raises otherwise.
    """
    meta = local.metadata
    rank = int(meta.get("rank", 0))
    payload = RankPayload(
        rank=rank,
        selected=selected,
        metadata={k: meta.get(k) for k in SHARED_METADATA},
        regions=list(local.regions) if selected else [],
        ops=list(local.ops) if selected else [],
        steps=list(local.steps) if selected else [],
    )
    dist = _initialised_dist()
    if dist is None:
        _, world = rank_and_world_size()
        if world > 1:
            raise SessionError(
                f"summary(all_ranks=True) needs torch.distributed initialised to reach the other "
                f"{world - 1} rank(s) (WORLD_SIZE={world}); call init_process_group first"
            )
        return AllRanksSummary([payload], meta)
    payloads: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(payloads, payload)
    return AllRanksSummary([p for p in payloads if p is not None], meta)


def _find_stragglers(per_rank: Mapping[int, Sequence[RegionStats]]) -> dict[str, Straggler]:
    totals: dict[str, list[tuple[int, int]]] = {}
    for rank, regions in per_rank.items():
        for stats in regions:
            totals.setdefault(stats.name, []).append((stats.total_ns, rank))
    found = {}
    for name, entries in totals.items():
        if len(entries) < 2:
            continue
        total, rank = max(entries)
        found[name] = Straggler(name, rank, total, statistics.median(t for t, _ in entries))
    return found


def _merge_ops(payloads: Sequence[RankPayload]) -> list[OpStat]:
    merged: dict[str, list[int]] = {}
    for payload in payloads:
        for op in payload.ops:
            row = merged.setdefault(op.name, [0, 0, 0, 0, 0])
            for i, value in enumerate((op.count, op.self_host_ns, op.total_host_ns,
                                       op.self_device_ns, op.total_device_ns)):
                row[i] += value
    ops = [OpStat(name, *values) for name, values in merged.items()]
    ops.sort(key=lambda op: op.self_device_ns + op.self_host_ns, reverse=True)
    return ops


def _slowest_steps(payloads: Sequence[RankPayload]) -> list[StepStat]:
    slowest: dict[int, StepStat] = {}
    for payload in payloads:
        for step in payload.steps:
            if step.index not in slowest or step.duration_ns > slowest[step.index].duration_ns:
                slowest[step.index] = step
    return [slowest[index] for index in sorted(slowest)]
