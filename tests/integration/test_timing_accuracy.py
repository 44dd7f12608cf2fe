"""On CPU the region timer agrees with an independent perf_counter measurement of the same work."""

from __future__ import annotations

import time
from typing import Callable

import pytest
import torch

import npuprofile as npp

TOLERANCE = 0.05  # relative; a few ms of work per iteration makes region overhead negligible


def matmul_work() -> Callable[[], None]:
    """A CPU workload of a few milliseconds."""
    a = torch.randn(192, 192)
    b = torch.randn(192, 192)

    def work() -> None:
        c = a
        for _ in range(12):
            c = torch.tanh(c @ b)

    return work


def agreement(measure: Callable[[], tuple[float, float]], attempts: int = 3) -> tuple[float, float]:
    """Run ``measure`` (returns timer total, reference total) until they agree or attempts run out.

    A busy 2-core machine can preempt between the two clocks' reads; a real
    disagreement (wrong units, lost regions, double counting) repeats and fails.
    """
    for _ in range(attempts):
        timer_total, reference = measure()
        if abs(timer_total - reference) <= TOLERANCE * reference:
            break
    return timer_total, reference


def test_region_total_matches_outer_perf_counter_on_the_same_loop() -> None:
    work = matmul_work()
    work()

    def measure() -> tuple[float, float]:
        with npp.session(trace=False, backend="cpu") as s:
            reference = 0
            for _ in range(15):
                outer = time.perf_counter_ns()
                with npp.profile_region("matmul"):
                    work()
                reference += time.perf_counter_ns() - outer
        return s.summary().region("matmul").total_ns, reference

    timer_total, reference = agreement(measure)
    assert reference > 15 * 500_000, "workload too small for the comparison to mean anything"
    assert timer_total == pytest.approx(reference, rel=TOLERANCE)
    assert timer_total <= reference  # the region lies inside the outer measurement


def test_step_totals_match_outer_perf_counter_per_step() -> None:
    work = matmul_work()

    def measure() -> tuple[float, float]:
        with npp.session(trace=False, backend="cpu") as s:
            started = time.perf_counter_ns()
            for _ in s.steps(range(6), warmup=2):
                with npp.profile_region("work"):
                    work()
                if s.step_count == 1:  # last warm-up item: its step() opens the first measured step
                    started = time.perf_counter_ns()
            reference = time.perf_counter_ns() - started
        summary = s.summary()
        assert [step.index for step in summary.steps] == [2, 3, 4, 5]
        return sum(step.duration_ns for step in summary.steps), reference

    timer_total, reference = agreement(measure)
    assert timer_total == pytest.approx(reference, rel=TOLERANCE)


def test_self_time_excludes_children_on_known_sleeps() -> None:
    def measure() -> tuple[float, float]:
        with npp.session(trace=False, backend="cpu") as s:
            with npp.profile_region("parent"):
                time.sleep(0.02)
                child_started = time.perf_counter_ns()
                with npp.profile_region("child"):
                    time.sleep(0.03)
                child_reference = time.perf_counter_ns() - child_started
        summary = s.summary()
        parent, child = summary.region("parent"), summary.region("child")
        assert parent.self_ns == parent.total_ns - child.total_ns
        assert child.self_ns == child.total_ns
        assert parent.self_ns >= 20_000_000 and child.total_ns >= 30_000_000  # sleeps never return early
        return child.total_ns, child_reference

    timer_total, reference = agreement(measure)
    assert timer_total == pytest.approx(reference, rel=TOLERANCE)


def test_warmup_iterations_are_excluded() -> None:
    with npp.session(trace=False, backend="cpu") as s:
        for index in s.steps(range(5), warmup=3):
            with npp.profile_region("slow" if index < 3 else "fast"):
                time.sleep(0.05 if index < 3 else 0.001)
            with npp.profile_region("every"):
                pass
    summary = s.summary()
    assert "slow" not in summary
    assert summary.region("fast").count == 2
    assert summary.region("every").count == 2
    assert summary.metadata["warmup_steps"] == 3
    assert all(step.duration_ns < 40_000_000 for step in summary.steps)
