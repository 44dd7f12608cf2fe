"""Region statistics: exact counts, totals and spread, percentiles exact up to a bound, memory bounded.

Per region name a session keeps exact count, total, self time, min, max and
the sums behind the standard deviation (Python integers: no rounding, so a
spread of nanoseconds on 100-second regions is exact). Percentiles come from
every sample up to :data:`EXACT_SAMPLES` samples of a name; past that bound the
samples are folded into a :class:`Sketch` (buckets whose bounds grow by a fixed
ratio) that answers every percentile within :data:`RELATIVE_ACCURACY` of the
exact value, in a few kilobytes however long the session runs. Steps are kept
the same way (:class:`Reservoir`): all of them up to :data:`STEP_LIMIT`, then a
uniform random sample of that many.
"""

from __future__ import annotations

import math
import operator
import random
from array import array
from bisect import bisect_right
from collections import Counter
from itertools import accumulate
from typing import Any, Callable, Generic, Sequence, TypeVar

PERCENTILES = (50, 90, 95, 99)

#: Per region name, percentiles are exact up to this many samples (8 bytes each), estimated after.
EXACT_SAMPLES = 10_000
#: Past :data:`EXACT_SAMPLES`, every percentile lies within this fraction of the exact value.
RELATIVE_ACCURACY = 0.005
#: Steps kept one by one; past this many, a uniform random sample of this many.
STEP_LIMIT = 10_000

_GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_INV_LOG_GAMMA = 1.0 / math.log(_GAMMA)
_MIDPOINT = 2.0 / (_GAMMA + 1)

T = TypeVar("T")


def escaped_name(name: str) -> str:
    """``name`` as text that encodes to UTF-8: lone surrogates become backslash escapes."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return name.encode("utf-8", "backslashreplace").decode("utf-8")
    return name


def percentile(sorted_values: "Sequence[int] | array[int]", q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between closest ranks."""
    if not sorted_values:
        return 0.0
    position = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = position - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


class Sketch:
    """Durations counted in buckets ``(g**(k-1), g**k]`` with ``g = (1+a)/(1-a)``, ``a`` the accuracy.

    Any value read back (a bucket's midpoint) lies within ``a`` of every value
    counted in its bucket, so percentiles interpolated between those values do
    too. Values below 1 ns count as 0. Mergeable: counts add.
    """

    __slots__ = ("counts", "zeros")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.zeros = 0

    def add(self, values: "Sequence[int] | array[int]") -> None:
        """Count ``values``."""
        counts = self.counts
        # Durations of one region repeat (clock ticks): bucket each distinct value once.
        for value, times in Counter(values).items():
            if value < 1:
                self.zeros += times
            else:
                key = math.ceil(math.log(value) * _INV_LOG_GAMMA)
                counts[key] = counts.get(key, 0) + times

    def merge(self, other: "Sketch") -> None:
        """Add ``other``'s counts to this one."""
        counts = self.counts
        for key, times in other.counts.items():
            counts[key] = counts.get(key, 0) + times
        self.zeros += other.zeros

    def values_at(self, ranks: Sequence[int]) -> list[float]:
        """The estimated value of each 0-based rank (ranks past the end read as the largest bucket)."""
        keys = sorted(self.counts)
        cumulative = list(accumulate(self.counts[k] for k in keys))
        out = []
        for rank in ranks:
            if rank < self.zeros or not keys:
                out.append(0.0)
                continue
            index = min(bisect_right(cumulative, rank - self.zeros), len(keys) - 1)
            out.append(_MIDPOINT * _GAMMA ** keys[index])
        return out

    def percentile(self, q: float, count: int) -> float:
        """The ``q``-th percentile of the ``count`` values counted, interpolated as :func:`percentile` does."""
        if count == 0:
            return 0.0
        position = (count - 1) * q / 100.0
        low = math.floor(position)
        high = min(low + 1, count - 1)
        low_value, high_value = self.values_at((low, high))
        return low_value + (high_value - low_value) * (position - low)


class RegionStats:
    """Accumulated timings of one region name (all in nanoseconds)."""

    __slots__ = ("name", "count", "total_ns", "self_ns", "min_ns", "max_ns", "_sum_sq", "_samples", "_sketch", "_sorted")

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.total_ns = 0
        self.self_ns = 0
        self.min_ns = 0
        self.max_ns = 0
        self._sum_sq = 0  # an exact integer: the standard deviation never loses digits
        self._samples: array[int] = array("q")
        self._sketch: Sketch | None = None
        self._sorted = True

    def add_batch(self, durations: "Sequence[int] | array[int]", nested_ns: int = 0) -> None:
        """Add the durations of several closed regions; ``nested_ns``: time of regions nested in them.

        Self time is duration minus nested time; the two may arrive in different batches.
        """
        self.self_ns -= nested_ns
        if not durations:
            return
        low, high = min(durations), max(durations)
        if self.count == 0 or low < self.min_ns:
            self.min_ns = low
        if self.count == 0 or high > self.max_ns:
            self.max_ns = high
        total = sum(durations)
        self.count += len(durations)
        self.total_ns += total
        self.self_ns += total
        self._sum_sq += sum(map(operator.mul, durations, durations))
        self._keep(durations)

    def merge(self, other: "RegionStats") -> None:
        """Fold ``other`` (same name) into this one."""
        if other.count == 0:
            self.self_ns += other.self_ns
            return
        if self.count == 0 or other.min_ns < self.min_ns:
            self.min_ns = other.min_ns
        if self.count == 0 or other.max_ns > self.max_ns:
            self.max_ns = other.max_ns
        self.count += other.count
        self.total_ns += other.total_ns
        self.self_ns += other.self_ns
        self._sum_sq += other._sum_sq
        if other._sketch is None:
            self._keep(other._samples)
        else:
            self._to_sketch().merge(other._sketch)

    def _keep(self, durations: "Sequence[int] | array[int]") -> None:
        if self._sketch is None:
            if len(self._samples) + len(durations) <= EXACT_SAMPLES:
                self._samples.extend(durations)
                self._sorted = False
                return
            self._to_sketch()
        assert self._sketch is not None
        self._sketch.add(durations)

    def _to_sketch(self) -> Sketch:
        if self._sketch is None:
            self._sketch = Sketch()
            self._sketch.add(self._samples)
            self._samples = array("q")
            self._sorted = True
        return self._sketch

    @property
    def exact(self) -> bool:
        """Whether the percentiles come from every sample (False: within :data:`RELATIVE_ACCURACY`)."""
        return self._sketch is None

    @property
    def mean_ns(self) -> float:
        """Mean duration."""
        return self.total_ns / self.count if self.count else 0.0

    @property
    def std_ns(self) -> float:
        """Population standard deviation of the durations (from exact integer sums)."""
        count = self.count
        if count < 2:
            return 0.0
        return math.sqrt(count * self._sum_sq - self.total_ns * self.total_ns) / count

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile of the durations."""
        if self._sketch is not None:
            estimate = self._sketch.percentile(q, self.count)
            return min(max(estimate, float(self.min_ns)), float(self.max_ns))
        if not self._sorted:
            self._samples = array("q", sorted(self._samples))
            self._sorted = True
        return percentile(self._samples, q)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (nanoseconds)."""
        out: dict[str, Any] = {
            "name": self.name,
            "count": self.count,
            "total_ns": self.total_ns,
            "self_ns": self.self_ns,
            "mean_ns": self.mean_ns,
            "std_ns": self.std_ns,
            "min_ns": self.min_ns,
            "max_ns": self.max_ns,
        }
        for q in PERCENTILES:
            out[f"p{q}_ns"] = self.percentile(q)
        return out

    def __repr__(self) -> str:
        return f"<RegionStats {self.name!r} count={self.count} total_ns={self.total_ns}>"


def _take(values: list[int]) -> list[int]:
    """The items of ``values`` so far, removed from it (safe against threads appending meanwhile)."""
    count = len(values)
    taken = values[:count]
    del values[:count]
    return taken


class Collector:
    """A session's region statistics: per name over the kept steps, and for the step under way.

    Work is proportional to what ran: folding visits the names that recorded
    samples since the last fold, closing a step the names that ran in it.
    """

    def __init__(self) -> None:
        #: Statistics per name over every kept (not warm-up) step closed so far.
        self.regions: dict[str, RegionStats] = {}
        #: Statistics per name of the step under way.
        self.step: dict[str, RegionStats] = {}
        self._previous: tuple[dict[str, list[int]], dict[str, list[int]]] = ({}, {})

    def fold(self, recorder: Any) -> None:
        """Move ``recorder``'s samples of this step into this step's statistics."""
        self._fold(recorder.samples, recorder.nested)

    def _fold(self, samples: dict[str, list[int]], nested: dict[str, list[int]]) -> None:
        step = self.step
        for part, durations_of in ((samples, True), (nested, False)):
            for name, values in list(part.items()):
                taken = _take(values)
                if not taken:
                    continue
                key = name if name.isascii() else escaped_name(name)
                stats = step.get(key)
                if stats is None:
                    stats = step[key] = RegionStats(key)
                if durations_of:
                    stats.add_batch(taken)
                else:
                    stats.add_batch((), nested_ns=sum(taken))

    def close_step(self, recorder: Any, keep: bool) -> dict[str, int]:
        """End the step: give the recorder new dicts, fold the old ones; each region's total in the step.

        ``keep=False`` (warm-up) leaves the step out of the statistics. Samples
        a thread appended to the previous step's dicts after they were swapped
        out land in this step.
        """
        pending = recorder.samples, recorder.nested
        recorder.samples, recorder.nested = {}, {}
        self._fold(*self._previous)
        self._fold(*pending)
        self._previous = pending
        step, self.step = self.step, {}
        if keep:
            regions = self.regions
            for name, stats in step.items():
                kept = regions.get(name)
                if kept is None:
                    regions[name] = stats
                else:
                    kept.merge(stats)
        return {name: stats.total_ns for name, stats in step.items() if stats.count}

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
