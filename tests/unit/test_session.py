"""Sessions on the real CPU profiler: traces, nesting in the trace, schedules, summaries, errors."""

from __future__ import annotations

import json
import re

import pytest
import torch

import npuprofile as npp
from npuprofile.errors import SessionError
from tests.conftest import load_trace, user_annotations


def work() -> torch.Tensor:
    return torch.randn(32, 32) @ torch.randn(32, 32)


def contains(outer: dict, inner: dict) -> bool:
    return outer["ts"] <= inner["ts"] and inner["ts"] + inner["dur"] <= outer["ts"] + outer["dur"] + 1


def test_regions_appear_nested_in_the_trace(tmp_path) -> None:
    with npp.session(output_dir=tmp_path, record_shapes=True) as s:
        with npp.profile_region("prefill"):
            with npp.profile_region("attention"):
                work()
        with npp.profile_region("decode"):
            work()
    assert len(s.trace_paths) == 1
    trace = load_trace(s.trace_paths[0])
    spans = {e["name"]: e for e in user_annotations(trace)}
    assert {"prefill", "attention", "decode"} <= set(spans)
    assert contains(spans["prefill"], spans["attention"])
    assert not contains(spans["prefill"], spans["decode"])
    shapes = [e for e in trace["traceEvents"] if e.get("name") == "aten::mm" and "Input Dims" in e.get("args", {})]
    assert shapes, "record_shapes=True must put input shapes in the trace"
    assert re.search(r"\.rank0\.", s.trace_paths[0].name) and s.trace_paths[0].name.endswith(".pt.trace.json")


@pytest.mark.parametrize(
    "sched, steps, traces, active",
    [
        (npp.schedule(wait=1, warmup=1, active=3), 5, 1, 3),
        (npp.schedule(wait=1, warmup=0, active=2, repeat=2), 8, 2, 4),
        (npp.schedule(wait=0, warmup=1, active=1, repeat=0), 6, 3, 3),
    ],
)
def test_schedule_controls_active_steps(tmp_path, sched, steps, traces, active) -> None:
    with npp.session(output_dir=tmp_path, schedule=sched) as s:
        for _ in s.steps(range(steps)):
            with npp.profile_region("step-work"):
                work()
    assert len(s.trace_paths) == traces
    recorded = set()
    for path in s.trace_paths:
        for event in load_trace(path)["traceEvents"]:
            if event.get("name", "").startswith("ProfilerStep#"):
                recorded.add(event["name"])
    assert len(recorded) == active == sched.recorded_steps(steps)
    # the summary counts exactly the steps the traces hold, nothing before, between or after
    summary = s.summary()
    assert summary.region("step-work").count == active
    assert [step.index for step in summary.steps] == sorted(int(name.split("#")[1]) for name in recorded)
    assert s.step_count == steps


def test_skip_first_window_summary_matches_the_trace(tmp_path) -> None:
    """schedule(skip_first=5, active=4, repeat=1) over 20 steps: a 4-step trace and a 4-step summary."""
    sched = npp.schedule(skip_first=5, active=4, repeat=1)
    with npp.session(output_dir=tmp_path, schedule=sched) as s:
        for _ in s.steps(range(20)):
            with npp.profile_region("step-work"):
                work()
    (path,) = s.trace_paths
    names = sorted(e["name"] for e in load_trace(path)["traceEvents"] if e.get("name", "").startswith("ProfilerStep#"))
    assert names == [f"ProfilerStep#{i}" for i in range(5, 9)]
    saved = json.loads(s.summary_paths[0].read_text())
    assert [step["index"] for step in saved["steps"]] == [5, 6, 7, 8]
    assert next(r for r in saved["regions"] if r["name"] == "step-work")["count"] == 4


def test_gzip_traces(tmp_path) -> None:
    with npp.session(output_dir=tmp_path, gzip=True) as s:
        with npp.profile_region("zipped"):
            work()
    (path,) = s.trace_paths
    assert path.name.endswith(".pt.trace.json.gz")
    assert "zipped" in {e["name"] for e in user_annotations(load_trace(path))}


def test_summary_table_and_dict(tmp_path) -> None:
    with npp.session(output_dir=tmp_path) as s:
        for _ in s.steps(range(3)):
            with npp.profile_region("forward"):
                work()
    summary = s.summary()
    text = str(summary)
    assert "forward" in text and "p95" in text and "aten::mm" in text
    data = json.loads(json.dumps(summary.to_dict()))
    (row,) = [r for r in data["regions"] if r["name"] == "forward"]
    assert row["count"] == 3 and row["min_ns"] <= row["p50_ns"] <= row["max_ns"]
    assert any(op["name"] == "aten::mm" for op in data["ops"])
    assert not any(op["name"] == "forward" for op in data["ops"])  # regions are not ops
    assert data["metadata"]["backend"] == "cpu"
    assert [p.name.split(".")[-2:] for p in s.summary_paths] == [["summary", "json"], ["summary", "txt"]]
    assert json.loads(s.summary_paths[0].read_text())["regions"][0]["name"] == "forward"


def test_timer_only_session_writes_nothing(tmp_path) -> None:
    out = tmp_path / "never-created"
    with npp.session(output_dir=out, trace=False) as s:
        with npp.profile_region("t"):
            work()
    assert s.trace_paths == [] and not out.exists()
    assert s.summary().region("t").count == 1
    assert s.summary().ops == []


def test_sessions_do_not_nest(tmp_path) -> None:
    with npp.session(trace=False):
        with pytest.raises(SessionError, match="already active"):
            npp.session(trace=False).start()


def test_lifecycle_errors_and_double_stop(tmp_path) -> None:
    s = npp.session(trace=False)
    with pytest.raises(SessionError, match="never started"):
        s.stop()
    with pytest.raises(SessionError, match="before the session started"):
        s.step()
    s.start()
    with pytest.raises(SessionError, match="already running"):
        s.start()
    s.stop()
    s.stop()
    assert s.state == "stopped"
    s.step()  # after stop: ignored


def test_user_exception_still_writes_trace_and_summary(tmp_path) -> None:
    with pytest.raises(RuntimeError, match="user bug"):
        with npp.session(output_dir=tmp_path) as s:
            with npp.profile_region("before-crash"):
                work()
                raise RuntimeError("user bug")
    assert len(s.trace_paths) == 1 and s.trace_paths[0].exists()
    assert "before-crash" in {e["name"] for e in user_annotations(load_trace(s.trace_paths[0]))}
    assert all(p.exists() for p in s.summary_paths)


def test_regions_feed_statistics_before_stop() -> None:
    with npp.session(trace=False) as s:
        for _ in s.steps(range(4), warmup=1):
            with npp.profile_region("loop"):
                pass
        live = s.summary()
    assert live.region("loop").count == 3
    assert [step.index for step in live.steps] == [1, 2, 3]
    assert all(step.regions["loop"] > 0 for step in live.steps)


def test_disabled_session_is_a_noop(tmp_path) -> None:
    with npp.session(enabled=False, output_dir=tmp_path) as s:
        with npp.profile_region("x"):
            pass
        s.step()
    assert s.summary().regions == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "sched, steps, pending",
    [
        (None, 2, True),  # no schedule: stop writes the only trace
        (npp.schedule(wait=1, warmup=1, active=2, repeat=1), 3, True),  # stopped inside the recorded window
        (npp.schedule(wait=1, warmup=1, active=2, repeat=1), 6, False),  # every cycle written before stop
    ],
)
def test_a_summary_is_kept_for_the_watchdog_only_while_stop_still_exports(tmp_path, monkeypatch, sched, steps,
                                                                         pending) -> None:
    kept = []
    original = npp.Session._keep_backstop

    def keep(self) -> None:
        kept.append(self)
        original(self)

    monkeypatch.setattr(npp.Session, "_keep_backstop", keep)
    with npp.session(output_dir=tmp_path, schedule=sched) as s:
        for _ in s.steps(range(steps)):
            with npp.profile_region("work"):
                work()
        assert s._trace is not None and s._trace.writes_at_stop() is pending
        written = len(s.trace_paths)
    assert kept == ([s] if pending else [])
    assert len(s.trace_paths) == written + (1 if pending else 0)  # what stop exported, exactly as foretold
    assert s.summary().region("work").count == (sched.recorded_steps(steps) if sched is not None else steps)
