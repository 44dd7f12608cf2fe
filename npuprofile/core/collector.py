"""A session's statistics over time: region samples folded step by step, steps kept within a bound.

Regions append raw durations to their recorder's dicts of the step under way
(:class:`~npuprofile.core.region.Recorder`); the session folds them here at each
step and summary. Work is proportional to what ran: folding visits the names
that recorded since the last fold, closing a step the names that ran in it,
never every name seen before. Steps are kept one by one up to
:data:`STEP_LIMIT`, then as a uniform random sample of that many
(:class:`Reservoir`).
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any, Callable, Generic, TypeVar

from npuprofile.core.stats import RegionStats, escaped_name

#: Steps kept one by one; past this many, a uniform random sample of this many.
STEP_LIMIT = 10_000

T = TypeVar("T")

def _take(values: list[int]) -> list[int]:
    """The items of ``values`` so far, removed from it (safe against threads appending meanwhile)."""
    count = len(values)
    taken = values[:count]
    del values[:count]
    return taken


def _fold_into(
    target: dict[str, RegionStats], samples: dict[str, list[int]], nested: dict[str, list[int]],
    totals: dict[str, int] | None = None,
) -> None:
    """Move raw samples into ``target``'s statistics (and each name's duration total into ``totals``).

    Names are kept as text that encodes to UTF-8 (summaries are JSON): lone surrogates escaped.
    """
    for name, values in list(samples.items()):
        if not values:
            continue
        stats = _stats_of(target, name)
        total = stats.add_batch(_take(values))
        if totals is not None:
            totals[stats.name] = totals.get(stats.name, 0) + total
    for name, values in list(nested.items()) if nested else ():
        if values:
            _stats_of(target, name).add_batch((), nested_ns=sum(_take(values)))


def _stats_of(target: dict[str, RegionStats], name: str) -> RegionStats:
    """``target``'s statistics of region ``name``, created when first seen, under its UTF-8-safe key."""
    key = name if name.isascii() else escaped_name(name)
    stats = target.get(key)
    if stats is None:
        stats = target[key] = RegionStats(key)
    return stats


class Collector:
    """Per region name: statistics over the kept steps, and over the step under way."""

    def __init__(self) -> None:
        #: Statistics per name over every kept (not warm-up) step closed so far.
        self.regions: dict[str, RegionStats] = {}
        #: Statistics per name of the step under way, folded so far (by a summary taken mid-step).
        self.step: dict[str, RegionStats] = {}
        self._previous: tuple[dict[str, list[int]], dict[str, list[int]]] = ({}, {})

    def fold(self, recorder: Any) -> None:
        """Move ``recorder``'s samples so far into the statistics of the step under way."""
        _fold_into(self.step, recorder.samples, recorder.nested)

    def close_step(self, recorder: Any, keep: bool) -> dict[str, int]:
        """End the step: give the recorder new dicts and fold the old ones; each region's total in the step.

        ``keep=False`` (warm-up) leaves the step out of the statistics. Samples
        a thread appended to the previous step's dicts after they were swapped
        out land in this step.
        """
        pending = recorder.samples, recorder.nested
        recorder.samples, recorder.nested = defaultdict(list), defaultdict(list)
        step, self.step = self.step, {}
        totals = {name: stats.total_ns for name, stats in step.items() if stats.count}
        target = self.regions if keep else {}
        for name, stats in step.items():
            kept = target.get(name)
            if kept is None:
                target[name] = stats
            else:
                kept.merge(stats)
        _fold_into(target, *self._previous, totals=totals)
        _fold_into(target, *pending, totals=totals)
        self._previous = pending
        return totals

    def snapshot(self) -> list[RegionStats]:
        """Copies of every name's statistics so far, the step under way included."""
        out = []
        for name in {**self.regions, **self.step}:
            stats = RegionStats(name)
            for part in (self.regions.get(name), self.step.get(name)):
                if part is not None:
                    stats.merge(part)
            if stats.count:
                out.append(stats)
        return out


class Reservoir(Generic[T]):
    """Every item up to ``limit``, then a uniform random sample of ``limit`` of them (Vitter's algorithm R)."""

    def __init__(self, limit: int = STEP_LIMIT, seed: int = 0) -> None:
        self.limit = limit
        self.seen = 0
        self.items: list[T] = []
        self._random = random.Random(seed)

    def add(self, item: T) -> None:
        """Offer one item."""
        self.seen += 1
        if len(self.items) < self.limit:
            self.items.append(item)
            return
        slot = self._random.randrange(self.seen)
        if slot < self.limit:
            self.items[slot] = item

    @property
    def sampled(self) -> bool:
        """Whether items were dropped (the kept ones are then a uniform sample)."""
        return self.seen > len(self.items)

    def sorted(self, key: Callable[[T], Any]) -> list[T]:
        """The kept items in ``key`` order."""
        return sorted(self.items, key=key)
