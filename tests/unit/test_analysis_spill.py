"""The lane sorter: every lane comes back fully sorted, however small the memory budget."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from npuprofile.analysis.spill import LaneSorter


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32), count=st.integers(0, 3000), lanes=st.integers(1, 5),
       budget=st.sampled_from([1, 7, 100, 1_000_000]), runs=st.integers(1, 4))
def test_each_lane_comes_back_sorted(seed: int, count: int, lanes: int, budget: int, runs: int) -> None:
    rng = random.Random(seed)
    expected: dict[int, list[tuple[float, float, int]]] = {lane: [] for lane in range(lanes)}
    with LaneSorter(budget) as sorter:
        for seq in range(count):
            lane = rng.randrange(lanes)
            # a few sorted runs interleaved, as torch writes a thread's ops and, later, its runtime calls
            record = (float(rng.randrange(runs) * 1000 + seq // runs), -rng.uniform(0, 5), seq)
            expected[lane].append(record)
            sorter.buffer(lane).append(record)
            if seq % 16 == 0:
                sorter.check()
        for lane, records in expected.items():
            assert list(sorter.sorted(lane)) == sorted(records)
        if budget <= 7 and count > 64:
            assert sorter.spills > 0 and sorter.spilled_records > 0
    assert not sorter.buffers and not sorter.runs


def test_buffers_keep_their_identity_across_spills() -> None:
    sorter = LaneSorter(2)
    buffer = sorter.buffer("a")
    buffer += [(3.0, 0), (1.0, 1), (2.0, 2)]
    sorter.check()
    assert buffer == [] and sorter.buffer("a") is buffer and sorter.spills == 1
    buffer.append((0.5, 3))
    assert list(sorter.sorted("a")) == [(0.5, 3), (1.0, 1), (2.0, 2), (3.0, 0)]
    assert list(sorter.sorted("missing")) == []
    sorter.close()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32), count=st.integers(300, 3000), fan_in=st.sampled_from([2, 3, 8]))
def test_a_lane_with_more_overlapping_runs_than_the_fan_in_is_merged_in_passes(seed: int, count: int,
                                                                               fan_in: int) -> None:
    import npuprofile.analysis.spill as spill_module

    rng = random.Random(seed)
    records = [(float(count - seq), -rng.uniform(0, 5), seq) for seq in range(count)]  # written in reverse
    original = spill_module.FAN_IN
    spill_module.FAN_IN = fan_in
    try:
        with LaneSorter(10) as sorter:
            for record in records:
                sorter.buffer("lane").append(record)
                sorter.check()
            assert list(sorter.sorted("lane")) == sorted(records)
            runs = len(sorter.runs["lane"])
            assert runs > fan_in and sorter.merged_runs >= (runs - 1) // fan_in
    finally:
        spill_module.FAN_IN = original
