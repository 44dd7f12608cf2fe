"""Device time from hand-made traces: unions, kinds and their overlaps, streams, the step window, markers."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npuprofile.analysis import summarize
from npuprofile.analysis.aggregate import Aggregator
from npuprofile.analysis.device_time import DeviceTime
from tests._trace_factory import launch, process, write_trace, x_event

GPU = process(0, "python", "GPU 0")
HOST = process(1, "python", "CPU")


def _device_time(events: list[dict[str, Any]], **options: Any) -> DeviceTime:
    agg = Aggregator(**options).feed_all(GPU + HOST + events).finish()
    assert len(agg.device_time) == 1, agg.device_time
    return agg.device_time[0]


def _kernel(name: str, ts: float, dur: float, stream: int = 7, cat: str = "kernel", **args: Any) -> dict[str, Any]:
    return x_event(name, ts, dur, pid=0, tid=stream, cat=cat, stream=stream, **args)


def test_unions_kinds_and_overlap() -> None:
    result = _device_time([
        _kernel("sgemm", 0, 10, stream=7),
        _kernel("ncclKernel_AllReduce", 5, 10, stream=8),
        _kernel("Memcpy DtoH", 20, 2, stream=7, cat="gpu_memcpy"),
    ])
    assert (result.span_ns, result.busy_ns, result.idle_ns) == (22_000, 17_000, 5_000)
    assert result.idle_share == pytest.approx(5 / 22)
    assert (result.compute_ns, result.communication_ns, result.memory_ns) == (10_000, 10_000, 2_000)
    assert result.comm_overlapped_share == pytest.approx(0.5)
    kinds = {k.kind: k for k in result.kernel_types}
    assert {k: v.time_ns for k, v in kinds.items()} == {
        "compute": 5_000, "communication": 5_000, "compute+communication": 5_000, "memory": 2_000}
    assert sum(k.share for k in result.kernel_types) == pytest.approx(1.0)
    assert (kinds["compute"].count, kinds["compute"].total_ns) == (1, 10_000)
    assert kinds["compute+communication"].count == 0
    streams = {s.stream: s for s in result.streams}
    assert (streams["7"].activities, streams["7"].busy_ns, streams["7"].idle_ns) == (2, 12_000, 10_000)
    assert (streams["8"].busy_ns, streams["8"].idle_ns) == (10_000, 0)
    assert result.rank is None and result.device == "GPU 0"


def test_activities_launched_in_the_last_step_are_left_out_unless_asked() -> None:
    host = [x_event("ProfilerStep#1", 0, 100, cat="user_annotation"),
            x_event("ProfilerStep#2", 100, 100, cat="user_annotation")]
    early, early_kernel = launch("cudaLaunchKernel", 50, 1, kernel_ts=60, kernel_dur=10)
    late, late_kernel = launch("cudaLaunchKernel", 150, 2, kernel_ts=160, kernel_dur=30)
    orphan = _kernel("sgemm", 70, 5, correlation=99)  # its launch is not in the trace
    loose = _kernel("sgemm", 80, 4)  # no correlation at all: placed by its own start
    events = host + [early, late, early_kernel, late_kernel, orphan, loose]
    counted = _device_time(events)
    assert (counted.span_ns, counted.busy_ns) == (24_000, 14_000)  # 60..70 and 80..84
    everything = _device_time(events, include_last_step=True)
    assert (everything.span_ns, everything.busy_ns) == (130_000, 44_000)  # the orphan never counts
    steps = {s.step: s for s in counted.steps}
    assert (steps[1].busy_ns, steps[2].busy_ns) == (19_000, 30_000)  # by launch (or own start) time
    single = _device_time(host[:1] + [early, late, early_kernel, late_kernel, orphan])
    assert single.busy_ns == 45_000  # one step: every activity counts


def test_kernels_are_never_folded_and_sync_markers_are_not_work(tmp_path: Path) -> None:
    # back-to-back launches of one kernel that overlap by a microsecond of rounding
    kernels = [_kernel("elementwise", 10 * i, 11) for i in range(565)]
    markers = [_kernel("Context Sync", 6000, 50, cat="cuda_sync"),
               x_event("ProfilerStep#3", 0, 5000, pid=0, tid=7, cat="gpu_user_annotation")]
    path = write_trace(tmp_path / "t.pt.trace.json", GPU + HOST + kernels + markers)
    result = summarize(path)
    assert [(o.name, o.count, o.self_ns) for o in result.device_ops] == [("elementwise", 565, 565 * 11_000)]
    assert [(o.name, o.kind, o.count) for o in result.sync_ops] == [("Context Sync", "sync", 1)]
    assert not result.steps  # a step annotation on a device lane is not a step
    assert result.device_time[0].busy_ns == (564 * 10 + 11) * 1000


def test_host_wait_counts_gaps_the_host_caused() -> None:
    first, first_kernel = launch("cudaLaunchKernel", 0, 1, kernel_ts=5, kernel_dur=10)  # ends at 15
    second, second_kernel = launch("cudaLaunchKernel", 20, 2, kernel_ts=25, kernel_dur=5)  # launched after 15
    third, third_kernel = launch("cudaLaunchKernel", 21, 3, kernel_ts=40, kernel_dur=5)  # queued in time
    stream = _device_time([first, second, third, first_kernel, second_kernel, third_kernel]).streams[0]
    assert (stream.idle_ns, stream.host_wait_ns) == (20_000, 10_000)


def test_host_processes_of_one_group_nest_together() -> None:
    # torch_npu writes the host twice: "Python" and "CANN" with the same thread ids
    events = process(10, "Python", "CPU") + process(20, "CANN", "CPU") + [
        x_event("Dequeue@aclnnMm", 0, 100, pid=10, tid=5, cat="dequeue"),
        x_event("AscendCL@aclnnMm", 10, 80, pid=20, tid=5, cat=None),
        x_event("aten::add", 0, 30, pid=10, tid=6),
        x_event("AscendCL@aclnnAdd", 200, 10, pid=20, tid=6, cat=None),
    ]
    ops = Aggregator().feed_all(events).finish().cpu_ops
    assert ops["Dequeue@aclnnMm"] == [1, 100, 20]
    assert ops["AscendCL@aclnnMm"] == [1, 80, 80]
    assert ops["aten::add"] == [1, 30, 30]  # another thread: nothing nests in it


def _measure(intervals: list[tuple[int, int]]) -> int:
    return len({t for start, end in intervals for t in range(start, end)})


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), count=st.integers(1, 60))
def test_figures_match_a_brute_force_count(seed: int, count: int) -> None:
    rng = random.Random(seed)
    kinds = {"compute": ("sgemm", "kernel"), "communication": ("ncclKernel_Send", "kernel"),
             "memory": ("Memset (Device)", "gpu_memset")}
    spans: dict[str, list[tuple[int, int]]] = {kind: [] for kind in kinds}
    events = []
    for _ in range(count):
        kind = rng.choice(list(kinds))
        start, length = rng.randrange(0, 200), rng.randrange(0, 30)
        spans[kind].append((start, start + length))
        name, cat = kinds[kind]
        events.append(_kernel(name, start, length, stream=rng.randrange(3), cat=cat))
    rng.shuffle(events)
    result = _device_time(events)
    every = [i for group in spans.values() for i in group]
    assert result.busy_ns == 1000 * _measure(every)
    assert result.span_ns == 1000 * (max(e for _, e in every) - min(s for s, _ in every))
    assert result.idle_ns == result.span_ns - result.busy_ns
    for kind in kinds:
        assert getattr(result, f"{kind}_ns") == 1000 * _measure(spans[kind])
    assert sum(k.time_ns for k in result.kernel_types) == result.busy_ns
    cells = {kind: {t for s, e in group for t in range(s, e)} for kind, group in spans.items()}
    both = len(cells["compute"] & cells["communication"])
    if cells["communication"]:
        assert result.comm_overlapped_share == pytest.approx(both / len(cells["communication"]))
    else:
        assert result.comm_overlapped_share is None
