"""Region statistics: exact counts and totals, percentiles over every sample."""

from __future__ import annotations

import math
import operator
from array import array
from typing import Any, Iterable

from npuprofile.core.env import pure_python_from_env

PERCENTILES = (50, 90, 95, 99)


def _load_moments() -> Any:
    """The C one-pass ``moments`` of npuprofile._speedups, unless not built or NPUPROFILE_PURE_PYTHON=1."""
    if pure_python_from_env():
        return None
    try:
        from npuprofile._speedups import moments
    except ImportError:
        return None
    return moments


_moments = _load_moments()


def percentile(sorted_values: "array[int] | list[int]", q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between closest ranks."""
    if not sorted_values:
        return 0.0
    position = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = position - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


class RegionStats:
    """Accumulated timings of one region name (all in nanoseconds)."""

    __slots__ = ("name", "count", "total_ns", "self_ns", "min_ns", "max_ns", "_sum_sq", "_samples", "_sorted")

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.total_ns = 0
        self.self_ns = 0
        self.min_ns = 0
        self.max_ns = 0
        self._sum_sq = 0.0
        self._samples: array[int] = array("q")
        self._sorted = True

    def add(self, duration_ns: int, self_ns: int) -> None:
        """Add one completed region."""
        if self.count == 0 or duration_ns < self.min_ns:
            self.min_ns = duration_ns
        if duration_ns > self.max_ns:
            self.max_ns = duration_ns
        self.count += 1
        self.total_ns += duration_ns
        self.self_ns += self_ns
        self._sum_sq += float(duration_ns) * duration_ns
        self._samples.append(duration_ns)
        self._sorted = False

    def merge(self, other: "RegionStats") -> None:
        """Fold ``other`` (same name) into this one."""
        if other.count == 0:
            return
        if self.count == 0 or other.min_ns < self.min_ns:
            self.min_ns = other.min_ns
        self.max_ns = max(self.max_ns, other.max_ns)
        self.count += other.count
        self.total_ns += other.total_ns
        self.self_ns += other.self_ns
        self._sum_sq += other._sum_sq
        self._samples.extend(other._samples)
        self._sorted = False

    @property
    def mean_ns(self) -> float:
        """Mean duration."""
        return self.total_ns / self.count if self.count else 0.0

    @property
    def std_ns(self) -> float:
        """Population standard deviation of the durations."""
        if self.count < 2:
            return 0.0
        mean = self.mean_ns
        return math.sqrt(max(0.0, self._sum_sq / self.count - mean * mean))

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile of the durations."""
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

    @classmethod
    def from_arrays(cls, name: str, durations: "array[int]", self_ns: int) -> "RegionStats":
        """Build from every duration of a region and the sum of its self times."""
        stats = cls(name)
        if durations:
            stats.count = len(durations)
            stats.self_ns = self_ns
            fast = _moments is not None and isinstance(durations, array) and durations.typecode == "q"
            moments = _moments(durations) if fast else None
            if moments is not None:  # one pass in C, sum of squares exact before rounding
                stats.total_ns, stats.min_ns, stats.max_ns, stats._sum_sq = moments
            else:
                stats.total_ns = sum(durations)
                stats.min_ns = min(durations)
                stats.max_ns = max(durations)
                stats._sum_sq = math.fsum(map(operator.mul, durations, durations))
            stats._samples = array("q", durations)
            stats._sorted = False
        return stats

    @classmethod
    def from_samples(cls, name: str, samples: Iterable[tuple[int, int]]) -> "RegionStats":
        """Build from ``(duration_ns, self_ns)`` pairs."""
        stats = cls(name)
        for duration, own in samples:
            stats.add(duration, own)
        return stats


class Samples:
    """Raw timings of one region name, appended on the hot path (one list append each).

    ``durations`` and ``selfs`` are appended independently, so concurrent
    threads never corrupt them. :meth:`compact` moves them into an 8-byte
    array (durations) and a running sum (self times), at each step boundary.
    """

    __slots__ = ("durations", "selfs", "archive", "self_total", "step_start", "step_self_start")

    def __init__(self) -> None:
        self.durations: list[int] = []
        self.selfs: list[int] = []
        self.archive: array[int] = array("q")
        self.self_total = 0
        self.step_start = 0
        self.step_self_start = 0

    def compact(self) -> None:
        """Move the hot lists into compact storage (safe against threads appending meanwhile)."""
        count = len(self.durations)
        self.archive.fromlist(self.durations[:count])
        del self.durations[:count]
        count = len(self.selfs)
        self.self_total += sum(self.selfs[:count])
        del self.selfs[:count]

    def close_step(self, keep: bool) -> int | None:
        """End a step: the region's total time inside it (``None`` if it did not run in it).

        ``keep=False`` drops the step's samples (warm-up).
        """
        self.compact()
        ran = len(self.archive) > self.step_start
        total = sum(self.archive[self.step_start :]) if ran else None
        if not keep:
            del self.archive[self.step_start :]
            self.self_total = self.step_self_start
        self.step_start = len(self.archive)
        self.step_self_start = self.self_total
        return total

    def __len__(self) -> int:
        return len(self.archive) + len(self.durations)

    def stats(self, name: str) -> RegionStats:
        """The statistics of everything recorded so far."""
        self.compact()
        return RegionStats.from_arrays(name, self.archive, self.self_total)
