"""Region statistics: exact counts, totals and spread, percentiles exact up to a bound, memory bounded.

Per region name a session keeps exact count, total, self time, min, max and
the sums behind the standard deviation (Python integers: no rounding, so a
spread of nanoseconds on 100-second regions is exact). Percentiles come from
every sample up to :data:`EXACT_SAMPLES` samples of a name; past that bound the
samples are folded into a :class:`Sketch` (buckets whose bounds grow by a fixed
ratio) that answers every percentile within :data:`RELATIVE_ACCURACY` of the
exact value, in a few kilobytes however long the session runs.
"""

from __future__ import annotations

import math
import operator
from array import array
from bisect import bisect_right
from collections import Counter
from itertools import accumulate, repeat
from typing import Any, Sequence

PERCENTILES = (50, 90, 95, 99)

#: Per region name, percentiles are exact up to this many samples (8 bytes each), estimated after.
EXACT_SAMPLES = 10_000
#: Past :data:`EXACT_SAMPLES`, every percentile lies within this fraction of the exact value.
RELATIVE_ACCURACY = 0.005

_GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_INV_LOG_GAMMA = 1.0 / math.log(_GAMMA)
_MIDPOINT = 2.0 / (_GAMMA + 1)


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
    too. Values below 1 ns count as 0. Mergeable: counts add. Also keeps the
    exact minimum, maximum and sum of squares of what it counted.
    """

    __slots__ = ("counts", "zeros", "min", "max", "sum_sq")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.zeros = 0
        self.min: int | None = None
        self.max: int | None = None
        self.sum_sq = 0

    def add(self, values: "Sequence[int] | array[int]") -> int:
        """Count ``values`` (not empty); their sum."""
        tally = Counter(values)
        low, high = min(tally), max(tally)
        if self.min is None or low < self.min:
            self.min = low
        if self.max is None or high > self.max:
            self.max = high
        counts = self.counts
        if len(tally) * 4 <= len(values):  # values repeat (clock ticks): work on each distinct one once
            distinct, times = list(tally), list(tally.values())
            total: int = sum(map(operator.mul, distinct, times))
            self.sum_sq += sum(map(operator.mul, map(operator.mul, distinct, distinct), times))
            if low < 1:
                self.zeros += sum(t for v, t in zip(distinct, times) if v < 1)
                kept = [(v, t) for v, t in zip(distinct, times) if v >= 1]
                distinct, times = [v for v, _ in kept], [t for _, t in kept]
            buckets = map(math.ceil, map(operator.mul, map(math.log, distinct), repeat(_INV_LOG_GAMMA)))
            for key, count in zip(buckets, times):
                counts[key] = counts.get(key, 0) + count
            return total
        # mostly distinct values: chains of C functions, no Python call per value
        self.sum_sq += sum(map(operator.mul, values, values))
        positive: Any = values
        if low < 1:
            positive = [v for v in values if v >= 1]
            self.zeros += len(values) - len(positive)
        keys = Counter(map(math.ceil, map(operator.mul, map(math.log, positive), repeat(_INV_LOG_GAMMA))))
        for key, hits in keys.items():
            counts[key] = counts.get(key, 0) + hits
        return sum(values)

    def merge(self, other: "Sketch") -> None:
        """Add ``other``'s counts to this one."""
        counts = self.counts
        for key, times in other.counts.items():
            counts[key] = counts.get(key, 0) + times
        self.zeros += other.zeros
        self.sum_sq += other.sum_sq
        if other.min is not None and (self.min is None or other.min < self.min):
            self.min = other.min
        if other.max is not None and (self.max is None or other.max > self.max):
            self.max = other.max

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
        """The ``q``-th percentile of the ``count`` values counted, interpolated as :func:`percentile` does.

        Clamped to the exact minimum and maximum.
        """
        if count == 0 or self.min is None or self.max is None:
            return 0.0
        position = (count - 1) * q / 100.0
        low = math.floor(position)
        high = min(low + 1, count - 1)
        low_value, high_value = self.values_at((low, high))
        estimate = low_value + (high_value - low_value) * (position - low)
        return min(max(estimate, float(self.min)), float(self.max))


class RegionStats:
    """Accumulated timings of one region name (all in nanoseconds).

    ``count`` and ``total_ns`` are kept as regions arrive. While every sample is
    kept (up to :data:`EXACT_SAMPLES`), ``min_ns``, ``max_ns``, the spread and
    the percentiles are worked out from the samples when read; past that bound
    a :class:`Sketch` keeps them as samples arrive.
    """

    __slots__ = ("name", "count", "total_ns", "_nested_ns", "_samples", "_sorted", "_sketch")

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.total_ns = 0
        self._nested_ns = 0  # time of regions nested in these: self time is the rest
        self._samples: array[int] | None = None  # None while there is at most one sample: total_ns
        self._sorted = True
        self._sketch: Sketch | None = None

    def add_batch(self, durations: "Sequence[int]", nested_ns: int = 0) -> int:
        """Add the durations of several closed regions (their total is returned).

        ``nested_ns`` is the time of regions nested in them, which is not their
        own; durations and nested time may arrive in different batches.
        """
        if nested_ns:
            self._nested_ns += nested_ns
        if not durations:
            return 0
        sketch = self._sketch
        if sketch is None and self.count + len(durations) <= EXACT_SAMPLES:
            if self.count == 0 and len(durations) == 1:  # a lone sample is its own total: no array
                total = self.total_ns = durations[0]
                self.count = 1
                return total
            total = sum(durations)
            kept = self._array()
            if isinstance(durations, list):
                kept.fromlist(durations)  # a C loop over the list, unlike extend
            else:
                kept.extend(durations)
            self._sorted = False
        else:
            total = (sketch or self._to_sketch()).add(durations)
        self.total_ns = total if self.count == 0 else self.total_ns + total
        self.count += len(durations)
        return total

    def merge(self, other: "RegionStats") -> None:
        """Fold ``other`` (same name) into this one."""
        self._nested_ns += other._nested_ns
        if other.count == 0:
            return
        if other._sketch is not None:
            (self._sketch or self._to_sketch()).merge(other._sketch)
        elif self.count == 0 and other._samples is None:
            pass  # a lone sample: carried by total_ns below
        elif self._sketch is None and self.count + other.count <= EXACT_SAMPLES:
            self._array().extend(other._values())
            self._sorted = False
        else:
            (self._sketch or self._to_sketch()).add(other._values())
        self.total_ns = other.total_ns if self.count == 0 else self.total_ns + other.total_ns
        self.count += other.count

    def _values(self) -> "array[int]":
        """Every kept sample (exact mode), without changing how they are stored."""
        if self._samples is not None:
            return self._samples
        return array("q", (self.total_ns,) if self.count else ())

    def _array(self) -> "array[int]":
        """The kept samples as an array to add to (a lone sample moves into it)."""
        if self._samples is None:
            self._samples = self._values()
        return self._samples

    def _to_sketch(self) -> Sketch:
        sketch = self._sketch = Sketch()
        if self.count:
            sketch.add(self._values())
        self._samples = None
        self._sorted = True
        return sketch

    def _ordered(self) -> "array[int]":
        values = self._values()
        if not self._sorted:
            values = self._samples = array("q", sorted(values))
            self._sorted = True
        return values

    @property
    def exact(self) -> bool:
        """Whether the percentiles come from every sample (False: within :data:`RELATIVE_ACCURACY`)."""
        return self._sketch is None

    @property
    def self_ns(self) -> int:
        """Total time inside these regions but outside the regions nested in them."""
        return self.total_ns - self._nested_ns

    @property
    def min_ns(self) -> int:
        """Shortest duration."""
        if self._sketch is not None:
            return self._sketch.min or 0
        samples = self._ordered()
        return samples[0] if samples else 0

    @property
    def max_ns(self) -> int:
        """Longest duration."""
        if self._sketch is not None:
            return self._sketch.max or 0
        samples = self._ordered()
        return samples[-1] if samples else 0

    @property
    def mean_ns(self) -> float:
        """Mean duration."""
        return self.total_ns / self.count if self.count else 0.0

    @property
    def std_ns(self) -> float:
        """Population standard deviation of the durations (from exact integer sums: no digits lost)."""
        count = self.count
        if count < 2:
            return 0.0
        if self._sketch is not None:
            sum_sq = self._sketch.sum_sq
        else:
            values = self._values()
            sum_sq = sum(map(operator.mul, values, values))
        return math.sqrt(count * sum_sq - self.total_ns * self.total_ns) / count

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile of the durations."""
        if self._sketch is not None:
            return self._sketch.percentile(q, self.count)
        return percentile(self._ordered(), q)

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
