"""Region statistics of every rank of a ``torch.distributed`` job, gathered on request.

``Session.summary(all_ranks=True)`` is a collective over the default process
group: every rank calls it (ranks not selected for profiling contribute an empty
entry), each rank's statistics travel once through ``all_gather_object``, and
every rank gets the same :class:`~npuprofile.summary.model.AllRanksSummary`.
Exact percentiles need every sample, so the exchange costs 8 bytes per recorded
region per rank.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
from typing import Any, Mapping, Sequence

from npuprofile.core.stats import RegionStats
from npuprofile.errors import SessionError
from npuprofile.sessions.distributed import _initialised_dist, rank_and_world_size
from npuprofile.summary.model import AllRanksSummary, OpRow, RankView, RegionRow, StepRow, Straggler, Summary

__all__ = ["AllRanksSummary", "RankPayload", "Straggler", "combine", "gather_summary"]

logger = logging.getLogger("npuprofile")

#: Metadata each rank shares (the rest stays local: options, versions, paths of other hosts).
SHARED_METADATA = ("rank", "host", "pid", "run_id", "backend", "steps", "degraded", "trace_paths", "coords", "stage")


@dataclasses.dataclass(frozen=True)
class RankPayload:
    """What one rank contributes to the gathered summary (its statistics keep every sample)."""

    rank: int
    selected: bool
    metadata: dict[str, Any]
    regions: list[RegionStats]
    ops: list[OpRow]
    steps: list[StepRow]


def gather_summary(local: Summary, stats: Sequence[RegionStats], *, selected: bool) -> AllRanksSummary:
    """Exchange this rank's ``local`` summary and region ``stats`` with every rank of the default group.

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
        regions=list(stats) if selected else [],
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
        return combine([payload], meta)
    payloads: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(payloads, payload)
    return combine([p for p in payloads if p is not None], meta)


def combine(payloads: Sequence[RankPayload], metadata: Mapping[str, Any]) -> AllRanksSummary:
    """The gathered summary of every rank's payload (``metadata``: the local rank's, marked ``all_ranks``)."""
    payloads = sorted(payloads, key=lambda p: p.rank)
    aggregate: dict[str, RegionStats] = {}
    for payload in payloads:
        for stats in payload.regions if payload.selected else ():
            aggregate.setdefault(stats.name, RegionStats(stats.name)).merge(stats)
    meta = dict(metadata)
    meta["all_ranks"] = True
    meta["ranks"] = [dict(p.metadata, rank=p.rank, selected=p.selected) for p in payloads]
    views = [RankView(p.rank, p.selected, dict(p.metadata),
                      sorted(map(RegionRow.from_stats, p.regions), key=lambda r: r.total_ns, reverse=True))
             for p in payloads]
    return AllRanksSummary.from_stats(aggregate.values(), _merge_ops(payloads), _slowest_steps(payloads), meta,
                                      ranks=views, stragglers=_find_stragglers(views))


def _find_stragglers(views: Sequence[RankView]) -> dict[str, Straggler]:
    totals: dict[str, list[tuple[int, int]]] = {}
    for view in views:
        for row in view.regions if view.selected else ():
            totals.setdefault(row.name, []).append((row.total_ns, view.rank))
    found = {}
    for name, entries in totals.items():
        if len(entries) < 2:
            continue
        total, rank = max(entries)
        found[name] = Straggler(name, rank, total, statistics.median(t for t, _ in entries))
    return found


def _merge_ops(payloads: Sequence[RankPayload]) -> list[OpRow]:
    merged: dict[str, list[int]] = {}
    for payload in payloads:
        for op in payload.ops:
            row = merged.setdefault(op.name, [0, 0, 0, 0, 0])
            for i, value in enumerate((op.count, op.self_host_ns, op.total_host_ns,
                                       op.self_device_ns, op.total_device_ns)):
                row[i] += value
    ops = [OpRow(name, count, self_host, total_host, self_device, total_device)
           for name, (count, self_host, total_host, self_device, total_device) in merged.items()]
    ops.sort(key=lambda op: op.self_ns, reverse=True)
    return ops


def _slowest_steps(payloads: Sequence[RankPayload]) -> list[StepRow]:
    """Per step index, the slowest rank's step (it carries that rank)."""
    slowest: dict[int, StepRow] = {}
    for payload in payloads:
        for step in payload.steps:
            step = step if step.rank is not None else dataclasses.replace(step, rank=payload.rank)
            if step.index not in slowest or step.duration_ns > slowest[step.index].duration_ns:
                slowest[step.index] = step
    return [slowest[index] for index in sorted(slowest)]
