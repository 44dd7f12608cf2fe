"""Trace summaries: self times by nesting, regions, steps, device lanes, several files, output formats."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npuprofile.analysis import aggregate as aggregate_module
from npuprofile.analysis import nesting as nesting_module
from npuprofile.analysis import summarize
from npuprofile.analysis.aggregate import Aggregator
from npuprofile.analysis.events import TraceLimitError
from npuprofile.analysis.runinfo import find_session_summary
from tests._trace_factory import REGIONS, shared_traces, write_ascend_layout


@pytest.fixture
def traces() -> dict[str, Any]:
    return shared_traces()


# -- real traces from the CPU profiler ---------------------------------------------------
def test_cpu_ops_match_torch_key_averages(traces: dict[str, Any]) -> None:
    result = summarize(traces["torch"], top=1000)
    ours = {op.name: op for op in result.cpu_ops}
    table = traces["torch_table"]
    aten = {name: row for name, row in table.items() if name.startswith("aten::")}
    assert len(aten) >= 5
    for name, (count, self_us, total_us) in aten.items():
        op = ours[name]
        assert op.count == count, name
        slack = 0.01 * count + 0.01 * total_us  # rounding of exported microseconds
        assert abs(op.self_ns / 1e3 - self_us) <= slack, (name, op.self_ns / 1e3, self_us)
        assert abs(op.total_ns / 1e3 - total_us) <= slack, (name, op.total_ns / 1e3, total_us)
    assert "train_step" not in ours and not any(n.startswith("ProfilerStep") for n in ours)
    assert {r.name for r in result.regions} == {"train_step", "optimizer"}
    assert [s.step for s in result.steps] == sorted(s.step for s in result.steps)
    assert len(result.steps) == 3


def test_regions_and_steps_of_an_npuprofile_session(traces: dict[str, Any]) -> None:
    result = summarize(traces["plain"])
    session = traces["session"]
    assert {r.name for r in result.regions} == set(REGIONS) == {r.name for r in session.summary().regions}
    active_steps = len(result.steps)
    assert active_steps == session.step_count - 1  # the schedule warms up one step
    step_region = result.region("step")
    assert step_region.count == active_steps
    assert result.region("attention").count == 2 * active_steps  # two layers
    for row in result.regions:
        assert 0 <= row.self_ns <= row.total_ns
        assert 0 <= row.share <= 1
    slack = 1000 * 4 * active_steps  # 1 us of rounding per event
    nested = result.region("layer.0").total_ns + result.region("layer.1").total_ns
    assert abs(result.region("forward").total_ns - result.region("forward").self_ns - nested) <= slack
    inner = result.region("attention").total_ns + result.region("mlp").total_ns
    layers_self = result.region("layer.0").self_ns + result.region("layer.1").self_ns
    assert abs(nested - layers_self - inner) <= slack
    for step in result.steps:
        assert set(step.regions) == set(REGIONS)
        assert sum(step.regions.values()) <= step.duration_ns + 1000
        assert step.other_ns >= 0
    assert sum(r.self_ns for r in result.regions) <= result.step_time_ns + slack
    # The trace covers the active steps only, the timer every step (the first is often
    # slow): the trace's mean must lie within the timer's range, in the same unit.
    timer = session.summary().region("forward")
    trace_mean = result.region("forward").total_ns / result.region("forward").count
    assert 0.5 * timer.min_ns <= trace_mean <= 2 * timer.max_ns


def test_memory_peaks_and_session_metadata(traces: dict[str, Any]) -> None:
    result = summarize(traces["plain"])
    assert result.memory and result.memory[0].device.startswith("cpu")
    assert result.memory[0].peak_allocated > 8 * 16 * 32 * 4  # at least one input batch
    session = traces["session"]
    assert result.metadata["backend"] == "cpu"
    assert result.metadata["run_id"] == session.run_id
    assert result.metadata["ranks"] == [0]
    assert result.sources[0].session_summary is not None
    assert find_session_summary(traces["plain"]) == session.summary_paths[0]
    assert result.cpu_ops and result.cpu_ops[0].self_ns >= result.cpu_ops[-1].self_ns
    assert not result.device_ops


def test_gzip_trace_summarizes_like_plain(traces: dict[str, Any], tmp_path: Path) -> None:
    import gzip

    plain = tmp_path / "copy.pt.trace.json"
    plain.write_bytes(gzip.decompress(traces["packed"].read_bytes()))
    assert summarize(traces["packed"]).to_dict()["regions"] == summarize(plain).to_dict()["regions"]


# -- hand-made layouts ----------------------------------------------------------------------
def test_torch_npu_layout(tmp_path: Path) -> None:
    write_ascend_layout(tmp_path)
    result = summarize(tmp_path)
    cpu = {o.name: o for o in result.cpu_ops}
    device = {o.name: o for o in result.device_ops}
    # per step: matmul 20..320 holds mm 30..230; add 400..500; steps twice
    assert (cpu["aten::matmul"].self_ns, cpu["aten::matmul"].total_ns) == (200_000, 600_000)
    assert cpu["aten::mm"].self_ns == 400_000 and cpu["aten::add"].self_ns == 200_000
    assert set(cpu) == {"aten::matmul", "aten::mm", "aten::add"}
    assert set(device) == {"MatMul_kernel", "Add_kernel", "hcom_allReduce_"}  # Overlap Analysis left out
    assert device["MatMul_kernel"].self_ns == 500_000 and device["MatMul_kernel"].count == 2
    assert [r.name for r in result.regions] == ["forward"]
    assert result.region("forward").total_ns == 1_600_000
    assert [(s.step, s.duration_ns, s.regions) for s in result.steps] == \
        [(1, 900_000, {"forward": 800_000}), (2, 900_000, {"forward": 800_000})]
    assert result.steps[1].start_ns == 1_000_000


def _cuda_like(rank: int) -> dict[str, Any]:
    host = [
        {"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#0", "pid": 1, "tid": 1, "ts": 0, "dur": 100},
        {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": 10, "dur": 30},
        {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1, "tid": 1, "ts": 20, "dur": 5},
    ]
    device = [
        {"ph": "M", "name": "process_name", "pid": 0, "tid": 0, "args": {"name": "python"}},
        {"ph": "M", "name": "process_labels", "pid": 0, "tid": 0, "args": {"labels": "GPU 0"}},
        {"ph": "X", "cat": "gpu_user_annotation", "name": "forward", "pid": 0, "tid": 7, "ts": 25, "dur": 50},
        {"ph": "X", "cat": "kernel", "name": "sgemm", "pid": 0, "tid": 7, "ts": 30, "dur": 40 + rank},
        {"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy HtoD", "pid": 0, "tid": 8, "ts": 80, "dur": 4},
    ]
    return {"distributedInfo": {"backend": "nccl", "rank": rank, "world_size": 2},
            "traceEvents": host + device}


def test_device_lanes_and_several_ranks(tmp_path: Path) -> None:
    for rank in (0, 1):
        (tmp_path / f"w{rank}.1.pt.trace.json").write_text(json.dumps(_cuda_like(rank)))
    result = summarize(tmp_path)
    assert result.metadata["ranks"] == [0, 1]
    assert [s.rank for s in result.sources] == [0, 1]
    device = {(o.rank, o.name): o for o in result.device_ops}
    assert set(device) == {(r, n) for r in (0, 1) for n in ("sgemm", "Memcpy HtoD")}  # the annotation is no op
    assert (device[(0, "sgemm")].self_ns, device[(1, "sgemm")].self_ns) == (40_000, 41_000)
    assert all(o.count == 1 for o in result.device_ops)
    cpu = {(o.rank, o.name): o for o in result.cpu_ops}
    assert all(cpu[(r, "aten::mm")].self_ns == 25_000 and cpu[(r, "cudaLaunchKernel")].self_ns == 5_000
               for r in (0, 1))
    assert cpu[(0, "aten::mm")].share == pytest.approx(25 / 30)
    assert [(s.rank, s.step) for s in result.steps] == [(0, 0), (1, 0)]
    assert [(d.rank, d.device) for d in result.device_time] == [(0, "GPU 0"), (1, "GPU 0")]


def test_session_region_names_mark_regions_in_any_category(tmp_path: Path) -> None:
    events = [{"ph": "X", "name": "my_region", "pid": 1, "tid": 1, "ts": 0, "dur": 10},
              {"ph": "X", "name": "op", "pid": 1, "tid": 1, "ts": 1, "dur": 2}]
    trace = tmp_path / "run.rank0.host_1.123.pt.trace.json"
    trace.write_text(json.dumps({"traceEvents": events}))
    assert "my_region" in {o.name for o in summarize(trace).cpu_ops}
    summary = {"metadata": {"backend": "npu", "trace_paths": [str(trace)]}, "regions": [{"name": "my_region"}]}
    (tmp_path / "run.rank0.host_1.summary.json").write_text(json.dumps(summary))
    result = summarize(trace)
    assert [r.name for r in result.regions] == ["my_region"]
    assert result.metadata["backend"] == "npu"


# -- nesting, as a property ---------------------------------------------------------------
def _tree(rng: random.Random, start: int, end: int, depth: int, out: list[dict[str, Any]],
          expected: dict[str, list[int]]) -> None:
    """Events nested inside [start, end); ``expected[name] = [count, total, self]``."""
    name = f"op{depth}_{rng.randrange(3)}"
    out.append({"ph": "X", "cat": "cpu_op", "name": name, "pid": 1, "tid": depth % 2 * 0 + 1, "ts": start,
                "dur": end - start})
    children = rng.randrange(4) if depth < 4 and end - start > 8 else 0
    child_time = 0
    cursor = start
    for index in range(children):
        room = (end - cursor) // (children - index)
        if room < 3:
            break
        lo = cursor + rng.randrange(0, room // 2)
        hi = rng.randrange(lo + 1, cursor + room)
        _tree(rng, lo, hi, depth + 1, out, expected)
        child_time += hi - lo
        cursor = hi
    row = expected.setdefault(name, [0, 0, 0])
    row[0] += 1
    row[1] += end - start
    row[2] += end - start - child_time


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), roots=st.integers(1, 30), budget=st.sampled_from([3, 17, 200_000]),
       order=st.sampled_from(["sorted", "reversed", "shuffled", "runtime last"]))
def test_self_times_follow_nesting_whatever_the_order(seed: int, roots: int, budget: int, order: str) -> None:
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    expected: dict[str, list[int]] = {}
    cursor = 0
    for _ in range(roots):
        length = rng.randrange(1, 200)
        _tree(rng, cursor, cursor + length, 0, events, expected)
        cursor += length + rng.randrange(0, 5)
    if order == "reversed":
        events.reverse()
    elif order == "shuffled":
        rng.shuffle(events)
    elif order == "runtime last":  # as torch writes them: the innermost calls of a thread long after the rest
        events.sort(key=lambda e: e["name"].startswith("op4"))
    agg = Aggregator(budget=budget).feed_all(events).finish()
    got = {name: [int(c), int(t), int(s)] for name, (c, t, s) in agg.cpu_ops.items()}
    assert got == expected


# -- output formats -----------------------------------------------------------------------------
def test_outputs_are_consistent(traces: dict[str, Any], tmp_path: Path) -> None:
    result = summarize(traces["plain"], top=5)
    data = json.loads(result.to_json(tmp_path / "s.json"))
    assert json.loads((tmp_path / "s.json").read_text()) == data
    assert len(data["cpu_ops"]) == 5
    assert [r["name"] for r in data["regions"]] == [r.name for r in result.regions]
    rows = list(csv.DictReader(io.StringIO(result.to_csv())))
    assert {r["name"] for r in rows if r["section"] == "region"} == set(REGIONS)
    assert sum(r["section"] == "step" for r in rows) == len(result.steps)
    assert sum(r["section"] == "op" for r in rows) == 5
    text = str(result)
    for title in ("Regions", "Steps", "Top CPU ops by self time", "Memory peaks"):
        assert title in text
    for name in REGIONS:
        assert name in text


def _ops(events: list[tuple[str, int, int]]) -> dict[str, list[int]]:
    feed = [{"ph": "X", "cat": "cpu_op", "name": n, "pid": 1, "tid": 1, "ts": ts, "dur": dur} for n, ts, dur in events]
    agg = Aggregator().feed_all(feed).finish()
    return {name: [int(v) for v in row] for name, row in agg.cpu_ops.items()}


def test_an_only_child_of_the_same_name_folds_into_its_parent_like_torch() -> None:
    # a > a > a > b: one call of a whose children are b's
    assert _ops([("a", 0, 100), ("a", 5, 90), ("a", 10, 50), ("b", 20, 10)]) == \
        {"a": [1, 100, 90], "b": [1, 10, 10]}
    # two children of the same name are calls of their own
    assert _ops([("a", 0, 100), ("a", 10, 10), ("a", 30, 10)]) == {"a": [3, 120, 100]}
    # a same-named child next to another child is not folded either
    assert _ops([("a", 0, 100), ("a", 10, 10), ("b", 30, 10)]) == {"a": [2, 110, 90], "b": [1, 10, 10]}


def test_malformed_events_are_counted_not_fatal() -> None:
    good = {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": 0, "dur": 10}
    bad = [dict(good, ts="0"), dict(good, dur=None), {k: v for k, v in good.items() if k != "dur"},
           dict(good, pid=[1]), dict(good, name=["x"]), dict(good, cat={"a": 1}), {"ph": ["X"]},
           dict(good, args="not a dict", ts=30), dict(good, name=7, ts=20)]
    agg = Aggregator().feed_all([good, *bad]).finish()
    assert agg.malformed == 7
    assert agg.cpu_ops == {"aten::mm": [2, 20, 20], "7": [1, 10, 10]}


def test_times_beyond_the_limit_are_malformed() -> None:
    good = {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": 0.0, "dur": 10.0}
    limit = aggregate_module.MAX_TIME_US
    bad = [dict(good, ts=1e300), dict(good, dur=-1e300), dict(good, ts=float("nan")), dict(good, dur=float("inf")),
           dict(good, ts=limit * 2)]
    agg = Aggregator().feed_all([good, dict(good, ts=limit - 100), *bad]).finish()
    assert agg.malformed == len(bad)
    assert agg.cpu_ops == {"aten::mm": [2, 20.0, 20.0]}


def test_more_lanes_than_the_limit_end_in_a_limit_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aggregate_module, "MAX_LANES", 50)
    events = [{"ph": "X", "name": "a", "pid": 1, "tid": tid, "ts": 0.0, "dur": 1.0} for tid in range(51)]
    assert len(Aggregator().feed_all(events[:50]).finish().cpu_ops) == 1
    with pytest.raises(TraceLimitError, match="limit: 50 lanes"):
        Aggregator().feed_all(events)


@pytest.mark.parametrize("depth, fits", [(60, True), (400, False)])
def test_open_events_past_the_limit_end_in_a_limit_error(monkeypatch: pytest.MonkeyPatch, depth: int,
                                                         fits: bool) -> None:
    monkeypatch.setattr(nesting_module, "MAX_OPEN_EVENTS", 100)
    events = [{"ph": "X", "name": "a", "pid": 1, "tid": 1, "ts": 5.0, "dur": 5.0} for _ in range(depth)]
    if fits:  # identical events nest one in the other: self time only in the innermost
        assert Aggregator(budget=7).feed_all(events).finish().cpu_ops == {"a": [1, 5.0, 5.0]}
    else:
        with pytest.raises(TraceLimitError, match="limit: 100 open events"):
            Aggregator(budget=7).feed_all(events).finish()


@pytest.mark.parametrize("limit", ["MAX_KINDS", "MAX_NAME_CHARS"])
def test_more_distinct_names_than_the_limit_end_in_a_limit_error(monkeypatch: pytest.MonkeyPatch, limit: str) -> None:
    monkeypatch.setattr(nesting_module, limit, 100 if limit == "MAX_KINDS" else 1000)
    events = [{"ph": "X", "name": f"op{i:08d}", "pid": 1, "tid": 1, "ts": 10.0 * i, "dur": 1.0} for i in range(120)]
    assert len(Aggregator().feed_all(events[:50]).finish().cpu_ops) == 50
    with pytest.raises(TraceLimitError, match="distinct event names"):
        Aggregator().feed_all(events + [dict(events[0], name="x" * 1000)])
