"""``bench``: time a function over many calls, warm-up excluded, with the device timed honestly.

Each call is one region in a timer-only session of its own, so the backend's
clock measures it: device events where the backend has them (read in bulk, no
synchronize per call), otherwise the host clock with the device synchronized at
the call's entry and exit. Regions inside ``fn`` are measured too.

``bench`` refuses to run while another session is active: its steps would
advance that session's schedule and its warm-up calls would land in that
session's statistics. Time a loop inside a session with
``Session.steps(iterable, warmup=N)`` instead.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Iterator

from npuprofile.core.region import ACTIVE, profile_region
from npuprofile.errors import ConfigError, SessionError
from npuprofile.sessions.config import parse_int
from npuprofile.sessions.session import session
from npuprofile.summary.model import BENCH, RegionRow, Rendered, Summary
from npuprofile.summary.text import format_ns

__all__ = ["BenchResult", "bench"]


class BenchResult(Rendered):
    """What :func:`bench` measured: the call region's statistics and the whole summary.

    ``str(result)`` is a table; :meth:`to_json` and :meth:`to_csv` export the
    summary (nanoseconds), whose metadata carries the bench settings.
    """

    def __init__(self, name: str, summary: Summary) -> None:
        self.name = name
        self.summary = summary

    @property
    def model(self) -> Summary:
        return self.summary

    @property
    def stats(self) -> RegionRow:
        """Statistics of the measured calls (warm-up excluded)."""
        return self.summary.region(self.name)

    @property
    def count(self) -> int:
        """Measured calls."""
        return self.stats.count

    @property
    def mean_ns(self) -> float:
        """Mean time per call."""
        return self.stats.mean_ns

    def __repr__(self) -> str:
        return f"<BenchResult {self.name!r} count={self.count} mean={format_ns(self.mean_ns)}>"


def _parse_min_time(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"min_time={value!r} is not allowed; allowed: a finite number of seconds >= 0")
    return float(value)


def _calls(repeat: int, warmup: int, min_time: float) -> Iterator[int]:
    """Indices of the calls: ``warmup`` first, then at least ``repeat`` and until ``min_time`` passed."""
    for index in range(warmup):
        yield index
    started = time.perf_counter()
    index = warmup
    done = 0
    while done < repeat or time.perf_counter() - started < min_time:
        yield index
        index += 1
        done += 1


def bench(
    fn: Callable[..., Any],
    *args: Any,
    warmup: int = 1,
    repeat: int = 10,
    min_time: float = 0.0,
    name: str | None = None,
    backend: str | None = None,
    **kwargs: Any,
) -> BenchResult:
    """Call ``fn(*args, **kwargs)`` repeatedly and return the statistics of one call.

    The first ``warmup`` calls run but are left out. Then ``fn`` runs at least
    ``repeat`` times and until ``min_time`` seconds of measured calls have
    passed. The call region is named ``name`` (default: ``fn``'s qualified
    name); ``backend`` picks the backend (default: ``NPUPROFILE_BACKEND`` or
    ``"auto"``). ``warmup``, ``repeat``, ``min_time``, ``name`` and ``backend``
    belong to ``bench``; to pass arguments of those names to ``fn``, bind them
    with ``functools.partial``. Runs only while no other session is active.
    """
    if not callable(fn):
        raise ConfigError(f"bench needs a callable, got {fn!r} of type {type(fn).__name__}")
    warmup = parse_int(warmup, "warmup")
    repeat = parse_int(repeat, "repeat", minimum=1)
    min_time = _parse_min_time(min_time)
    if name is None:
        name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    if not isinstance(name, str) or not name:
        raise ConfigError(f"name={name!r} is not allowed; allowed: a non-empty str")
    if ACTIVE:
        raise SessionError(
            "bench() runs its own timer-only session and another session is active; call bench() "
            "outside it, or time the loop in that session with s.steps(iterable, warmup=N)"
        )
    with session(trace=False, backend=backend, enabled=True, ranks="all") as timed:
        # A host clock only sees the device's work if the call waits for it; device events do not need to.
        host_clock = timed._recorder.timer.host_clock if timed._recorder is not None else True
        for _ in timed.steps(_calls(repeat, warmup, min_time), warmup=warmup):
            with profile_region(name, sync=host_clock):
                fn(*args, **kwargs)
    summary = timed.summary()
    settings = {
        "name": name,
        "warmup": warmup,
        "repeat": repeat,
        "min_time": min_time,
        "clock": "host (synchronized)" if host_clock else "device events",
    }
    metadata = {**summary.metadata, "bench": settings}
    return BenchResult(name, dataclasses.replace(summary, kind=BENCH, name=name, metadata=metadata))
