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
from npuprofile.core import region as _region
from tests.fakes import ClockBackend, ManualClock, ManualEventClock, register_clock


def use_clock(clock: ManualClock) -> ClockBackend:
    return register_clock(npp.backends, "fake", clock)


# A region tree: (name, time before the children, children, time after the children).
names = st.sampled_from(["a", "b", "c", "d"])
durations = st.integers(min_value=0, max_value=10**9)
trees = st.recursive(
    st.tuples(names, durations, st.just(()), durations),
    lambda children: st.tuples(names, durations, st.lists(children, max_size=3).map(tuple), durations),
    max_leaves=12,
)


def run_tree(tree: Any, clock: ManualClock, expected: dict[str, list[tuple[int, int]]], step: dict[str, int]) -> int:
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
@pytest.mark.parametrize("clock_type", [ManualClock, ManualEventClock])
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
    adapter = use_clock(ManualClock())
    with npp.session(backend="fake", trace=False):
        with npp.profile_region("synced", sync=True):
            assert adapter.syncs == 1
        with npp.profile_region("plain"):
            pass
    assert adapter.syncs == 2


def test_summary_exports_carry_the_same_numbers(tmp_path: Any) -> None:
    import csv
    import json

    clock = ManualClock()
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


# -- spread, bounds and cost of the statistics -----------------------------------------------------


def run_regions(clock: ManualClock, name: str, durations: Any) -> None:
    for ns in durations:
        with npp.profile_region(name):
            clock.advance(int(ns))


def test_std_is_exact_for_long_regions() -> None:
    # 100-second regions a few hundred nanoseconds apart: sum(x^2)/n - mean^2 in floats gives 0
    durations = [100_000_000_000 + offset for offset in (0, 1_000, 2_000, 500, 1_500, 0, 999, 1)]
    clock = ManualClock()
    use_clock(clock)
    with npp.session(backend="fake", trace=False) as s:
        run_regions(clock, "long", durations)
    stats = s.summary().region("long")
    exact = statistics.pstdev(durations)  # exact rational arithmetic on ints
    assert exact > 500
    assert math.isclose(stats.std_ns, exact, rel_tol=1e-12)


@settings(max_examples=25, deadline=None)
@given(base=st.integers(10**9, 10**12), offsets=st.lists(st.integers(0, 10**4), min_size=2, max_size=40))
def test_std_matches_exact_arithmetic_for_large_offsets(base: int, offsets: list[int]) -> None:
    stats = _region_stats("x", [base + o for o in offsets])
    assert math.isclose(stats.std_ns, statistics.pstdev([base + o for o in offsets]), rel_tol=1e-9, abs_tol=1e-9)


def _region_stats(name: str, durations: list[int]) -> Any:
    from npuprofile.core.stats import RegionStats

    stats = RegionStats(name)
    stats.add_batch(durations)
    return stats


def lognormal_durations(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(mean=10.0, sigma=0.8, size=count).astype(np.int64) + 1


def test_percentiles_are_exact_up_to_the_bound_and_within_one_percent_after() -> None:
    from npuprofile.core.stats import EXACT_SAMPLES

    durations = lognormal_durations(3 * EXACT_SAMPLES, seed=1)
    clock = ManualClock()
    use_clock(clock)
    with npp.session(backend="fake", trace=False) as s:
        for index, step_part in enumerate(np.array_split(durations, 30)):
            run_regions(clock, "r", step_part)
            s.step()
            if (index + 1) * len(step_part) == EXACT_SAMPLES:  # exactly at the bound: still every sample
                at_bound = s.summary()
                kept = durations[:EXACT_SAMPLES]
                assert at_bound.region("r").exact and at_bound.metadata["sampling"]["estimated_percentiles"] == []
                for q in (50, 90, 95, 99):
                    assert at_bound.region("r").percentile(q) == pytest.approx(float(np.percentile(kept, q)), abs=1e-6)
    summary = s.summary()
    stats = summary.region("r")
    assert not stats.exact and summary.metadata["sampling"]["estimated_percentiles"] == ["r"]
    assert summary.metadata["sampling"]["percentiles_exact_up_to"] == EXACT_SAMPLES
    for q in (50, 90, 95, 99):
        expected = float(np.percentile(durations, q))
        assert abs(stats.percentile(q) - expected) <= 0.01 * expected
    # everything but the percentiles stays exact past the bound
    values = [int(v) for v in durations]
    assert (stats.count, stats.total_ns, stats.min_ns, stats.max_ns) == (len(values), sum(values), min(values), max(values))
    assert math.isclose(stats.std_ns, statistics.pstdev(values), rel_tol=1e-12)


@settings(max_examples=20, deadline=None)
@given(parts=st.lists(st.integers(1, 8_000), min_size=2, max_size=5), seed=st.integers(0, 2**16))
def test_merged_statistics_stay_within_one_percent_past_the_bound(parts: list[int], seed: int) -> None:
    # ranks are merged like this (gathered summaries): exact + exact past the bound, sketch + sketch
    from npuprofile.core.stats import RegionStats

    merged = RegionStats("r")
    everything: list[int] = []
    for index, size in enumerate(parts):
        values = [int(v) for v in lognormal_durations(size, seed + index)]
        everything += values
        merged.merge(_region_stats("r", values))
    assert (merged.count, merged.total_ns, merged.max_ns) == (len(everything), sum(everything), max(everything))
    for q in (50, 90, 99):
        expected = float(np.percentile(everything, q))
        assert abs(merged.percentile(q) - expected) <= 0.01 * expected


def test_steps_are_all_kept_up_to_the_bound_then_sampled() -> None:
    from npuprofile.core.collector import STEP_LIMIT

    clock = ManualClock()
    use_clock(clock)
    total_steps = STEP_LIMIT + 2_000
    with npp.session(backend="fake", trace=False) as s:
        for _ in range(STEP_LIMIT):
            run_regions(clock, "r", [3])
            s.step()
        all_kept = s.summary()
        for _ in range(total_steps - STEP_LIMIT):
            run_regions(clock, "r", [3])
            s.step()
    assert [step.index for step in all_kept.steps] == list(range(STEP_LIMIT))
    assert all_kept.metadata["sampling"]["steps"] == "all"
    summary = s.summary()
    indices = [step.index for step in summary.steps]
    assert len(indices) == STEP_LIMIT and indices == sorted(set(indices)) and indices[-1] < total_steps
    assert any(index >= STEP_LIMIT for index in indices)  # later steps get their chance
    sampling = summary.metadata["sampling"]
    assert (sampling["steps"], sampling["steps_kept"], sampling["steps_measured"]) == ("reservoir", STEP_LIMIT, total_steps)
    assert all(step.regions == {"r": 3} for step in summary.steps)
    assert summary.region("r").count == total_steps  # region statistics still count every step


def test_step_work_depends_on_what_ran_not_on_names_seen_before(monkeypatch: pytest.MonkeyPatch) -> None:
    from npuprofile.core.stats import RegionStats

    def work_of_one_step(names_seen: int) -> int:
        clock = ManualClock()
        use_clock(clock)
        with npp.session(backend="fake", trace=False) as s:
            for index in range(names_seen):
                run_regions(clock, f"req-{index}", [1])
                s.step()
            calls = []
            original = RegionStats.add_batch

            def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
                calls.append(self.name)
                return original(self, *args, **kwargs)

            monkeypatch.setattr(RegionStats, "add_batch", counting)
            run_regions(clock, "hot", [1])
            s.step()
            monkeypatch.setattr(RegionStats, "add_batch", original)
        return len(calls)

    assert work_of_one_step(10) == work_of_one_step(2_000) == 1
