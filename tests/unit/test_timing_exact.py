"""Region statistics are exact: durations injected through a fake clock, checked against references."""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npuprofile as npp
from npuprofile.backends.base import Timer
from npuprofile.core import region as _region
from tests.fakes import ClockBackend, register_clock


class FakeClock(Timer):
    """A host clock that moves only when the test advances it."""

    host_clock = True

    def __init__(self) -> None:
        self.now = 0
        self.flushes = 0

    def mark(self) -> Any:
        return self.now

    def advance(self, ns: int) -> None:
        self.now += ns

    def flush(self) -> None:
        self.flushes += 1


class FakeEvent:
    __slots__ = ("time", "timer")

    def __init__(self, time: int, timer: "FakeEventTimer") -> None:
        self.time = time
        self.timer = timer


class FakeEventTimer(FakeClock):
    """A device-style clock: marks are events, readable only after a flush (like CUDA events)."""

    host_clock = False

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[FakeEvent] = []
        self.readable: set[int] = set()

    def mark(self) -> Any:
        event = FakeEvent(self.now, self)
        self.pending.append(event)
        return event

    def flush(self) -> None:
        self.flushes += 1
        self.readable.update(id(e) for e in self.pending)
        self.pending.clear()

    def elapsed_ns(self, start: Any, end: Any) -> int:
        if id(start) not in self.readable or id(end) not in self.readable:
            raise AssertionError("elapsed_ns read an event before flush()")
        return end.time - start.time


def use_clock(clock: FakeClock) -> ClockBackend:
    return register_clock(npp.backends, "fake", clock)


# A region tree: (name, time before the children, children, time after the children).
names = st.sampled_from(["a", "b", "c", "d"])
durations = st.integers(min_value=0, max_value=10**9)
trees = st.recursive(
    st.tuples(names, durations, st.just(()), durations),
    lambda children: st.tuples(names, durations, st.lists(children, max_size=3).map(tuple), durations),
    max_leaves=12,
)


def run_tree(tree: Any, clock: FakeClock, expected: dict[str, list[tuple[int, int]]], step: dict[str, int]) -> int:
    """Run ``tree`` as nested regions; record (duration, self) per name; return its duration."""
    name, before, children, after = tree
    with npp.profile_region(name):
        clock.advance(before)
        inner = sum(run_tree(child, clock, expected, step) for child in children)
        clock.advance(after)
    duration = before + inner + after
    expected.setdefault(name, []).append((duration, before + after))
    step[name] = step.get(name, 0) + duration
    return duration


def check_stats(stats: Any, samples: list[tuple[int, int]]) -> None:
    durations_ = [d for d, _ in samples]
    assert stats.count == len(samples)
    assert stats.total_ns == sum(durations_)
    assert stats.self_ns == sum(s for _, s in samples)
    assert stats.min_ns == min(durations_)
    assert stats.max_ns == max(durations_)
    assert stats.mean_ns == sum(durations_) / len(durations_)
    assert math.isclose(stats.std_ns, statistics.pstdev(durations_), rel_tol=1e-6, abs_tol=1e-3 * max(durations_) + 1)
    for q in (50, 90, 95, 99):
        assert math.isclose(stats.percentile(q), float(np.percentile(durations_, q)), rel_tol=1e-9, abs_tol=1e-6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.lists(trees, min_size=1, max_size=3), min_size=1, max_size=4), warmup=st.integers(0, 2))
@pytest.mark.parametrize("clock_type", [FakeClock, FakeEventTimer])
def test_statistics_are_exact_for_random_nested_trees(clock_type: type, steps: list, warmup: int) -> None:
    _region.ACTIVE.clear()
    clock = clock_type()
    adapter = use_clock(clock)
    expected: dict[str, list[tuple[int, int]]] = {}
    step_totals: list[tuple[int, dict[str, int]]] = []
    with npp.session(backend="fake", trace=False) as s:
        for index, step_trees in enumerate(s.steps(steps, warmup=warmup)):
            per_step: dict[str, int] = {}
            kept = expected if index >= warmup else {}
            duration = sum(run_tree(tree, clock, kept, per_step) for tree in step_trees)
            if index >= warmup:  # a step lists every region that ran in it, even for 0 ns
                step_totals.append((duration, dict(per_step)))
    summary = s.summary()
    assert sorted(r.name for r in summary.regions) == sorted(expected)
    for name, samples in expected.items():
        check_stats(summary.region(name), samples)
    assert [st_.index for st_ in summary.steps] == list(range(warmup, len(steps)))
    assert [(st_.duration_ns, st_.regions) for st_ in summary.steps] == step_totals
    assert adapter.syncs == 0  # no region asked for sync
    if not clock.host_clock:
        assert clock.flushes == len(steps) + 1  # once per step and once at stop, never per region


def test_sync_regions_synchronize_at_entry_and_exit() -> None:
    adapter = use_clock(FakeClock())
    with npp.session(backend="fake", trace=False):
        with npp.profile_region("synced", sync=True):
            assert adapter.syncs == 1
        with npp.profile_region("plain"):
            pass
    assert adapter.syncs == 2


def test_summary_exports_carry_the_same_numbers(tmp_path: Any) -> None:
    import csv
    import json

    clock = FakeClock()
    use_clock(clock)
    with npp.session(backend="fake", trace=False) as s:
        for ns in (5, 1, 9, 3):
            with npp.profile_region("r"):
                clock.advance(ns)
    summary = s.summary()
    data = json.loads(summary.to_json(tmp_path / "s.json"))
    row = data["regions"][0]
    assert (row["count"], row["total_ns"], row["min_ns"], row["max_ns"]) == (4, 18, 1, 9)
    assert row["p50_ns"] == float(np.percentile([5, 1, 9, 3], 50))
    summary.to_csv(tmp_path / "s.csv")
    with (tmp_path / "s.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["name"] == "r" and int(rows[0]["total_ns"]) == 18 and float(rows[0]["p90_ns"]) == row["p90_ns"]
