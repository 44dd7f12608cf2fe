"""The capture controller on the real CPU profiler: step windows, stages, requests, stopping, background work."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

import npuprofile as npp
from npuprofile.errors import ConfigError, SessionError
from npuprofile.sessions import controller as _controller
from npuprofile.sessions.session import Session
from tests.conftest import load_trace
from tests.mock_engine import MockEngine


def traces(capture: npp.Capture, stage: str | None = None) -> list[Path]:
    found = [Path(f) for f in capture.files if ".pt.trace.json" in f]
    return [p for p in found if stage is None or f".{stage}." in p.name]


def step_ranges(path: Path) -> list[str]:
    names = [e["name"] for e in load_trace(path)["traceEvents"]
             if e.get("ph") == "X" and e.get("name", "").startswith("ProfilerStep#")]
    return sorted(names, key=lambda name: int(name.split("#")[1]))


def op_names(path: Path) -> set[str]:
    return {e["name"] for e in load_trace(path)["traceEvents"] if e.get("cat") == "cpu_op"}


@pytest.fixture
def controller(tmp_path: Path) -> Any:
    ctl = npp.Controller(output_dir=tmp_path, run_id="eng")
    yield ctl
    ctl.close()


# -- exact step windows ----------------------------------------------------------------------


def test_start_step_window_is_exact_in_trace_and_summary(controller: npp.Controller) -> None:
    engine = MockEngine(controller, stages=lambda i: None)
    capture = controller.request(steps=4, start_step=3)
    engine.run(12)
    files = capture.wait(30)
    (trace,) = traces(capture)
    assert step_ranges(trace) == [f"ProfilerStep#{i}" for i in (3, 4, 5, 6)]
    summary = capture.summary()
    assert len(summary.steps) == 4
    assert summary.region("decode").count == 4  # one region per recorded step, none before or after
    assert summary.metadata["capture"]["engine_steps"] == [3, 4, 5, 6]
    saved = json.loads(next(Path(f) for f in files if f.endswith(".summary.json")).read_text())
    assert len(saved["steps"]) == 4 and saved["metadata"]["capture"]["name"] == "c1"
    assert Path(trace).name.startswith("eng-c1.rank0.")


def test_delay_steps_counts_from_the_request(controller: npp.Controller) -> None:
    engine = MockEngine(controller, stages=lambda i: None)
    engine.run(5)  # steps 0..4 ran; the next is 5
    capture = controller.request(steps=2, delay_steps=3)
    assert capture.start_step == 8
    engine.run(6)
    capture.wait(30)
    assert step_ranges(traces(capture)[0]) == ["ProfilerStep#8", "ProfilerStep#9"]


def test_request_starts_at_the_next_step_by_default(controller: npp.Controller) -> None:
    engine = MockEngine(controller, stages=lambda i: None)
    engine.run(2)
    capture = controller.request(steps=3)
    engine.run(5)
    capture.wait(30)
    assert step_ranges(traces(capture)[0]) == ["ProfilerStep#2", "ProfilerStep#3", "ProfilerStep#4"]
    assert len(capture.summary().steps) == 3


def test_idle_steps_write_nothing_and_count(tmp_path: Path) -> None:
    with npp.Controller(output_dir=tmp_path) as ctl:
        for _ in range(50):
            ctl.step()
        assert ctl.step_index == 49 and not ctl.capturing
    assert list(tmp_path.iterdir()) == []


# -- stages -----------------------------------------------------------------------------------


def test_stages_each_get_their_own_trace_and_summary(controller: npp.Controller) -> None:
    engine = MockEngine(controller)  # prefill every 4th step, decode otherwise
    capture = controller.request(steps=2, stages=("prefill", "decode"))
    engine.run(24)
    capture.wait(30)
    (prefill,) = traces(capture, "prefill")
    (decode,) = traces(capture, "decode")
    assert step_ranges(prefill) == ["ProfilerStep#0", "ProfilerStep#4"]
    # decode starts once the prefill trace is done (one profiler at a time)
    assert step_ranges(decode) == ["ProfilerStep#5", "ProfilerStep#6"]
    # steps of the other stage are not recorded: decode work (tanh) never lands in the prefill trace
    assert "aten::sigmoid" in op_names(prefill) and "aten::tanh" not in op_names(prefill)
    assert "aten::tanh" in op_names(decode) and "aten::sigmoid" not in op_names(decode)
    for stage in ("prefill", "decode"):
        summary = capture.summary(stage)
        assert len(summary.steps) == 2 and [r.name for r in summary.regions] == [stage]
        assert summary.metadata["stage"] == stage
    with pytest.raises(ConfigError, match="has stages"):
        capture.summary()


def test_steps_without_a_stage_never_count_toward_a_staged_capture(controller: npp.Controller) -> None:
    engine = MockEngine(controller, stages=lambda i: "decode" if i % 3 == 2 else None)
    capture = controller.request(steps=3, stages="decode")
    engine.run(12)
    capture.wait(30)
    assert step_ranges(traces(capture)[0]) == ["ProfilerStep#2", "ProfilerStep#5", "ProfilerStep#8"]
    assert capture.summary("decode").region("decode").count == 3


# -- requests ---------------------------------------------------------------------------------


def test_a_request_while_one_runs_is_refused_or_queued(controller: npp.Controller) -> None:
    engine = MockEngine(controller, stages=lambda i: None)
    first = controller.request(steps=3)
    engine.run(1)
    with pytest.raises(SessionError, match=r"capture refused: capture 'c1' is running \(0 of 3 steps recorded\)"):
        controller.request(steps=2)
    queued = controller.request(steps=2, queue=True, name="after")
    engine.run(8)
    first.wait(30)
    queued.wait(30)
    assert step_ranges(traces(first)[0]) == ["ProfilerStep#0", "ProfilerStep#1", "ProfilerStep#2"]
    assert step_ranges(traces(queued)[0]) == ["ProfilerStep#3", "ProfilerStep#4"]
    assert [c.name for c in controller.captures] == ["c1", "after"]


def test_a_request_while_one_waits_is_refused(controller: npp.Controller) -> None:
    controller.request(steps=2, start_step=100)
    with pytest.raises(SessionError, match="waits to start at step 100"):
        controller.request(steps=2)


@pytest.mark.parametrize("options, message", [
    ({"steps": 0}, "steps=0"),
    ({"start_step": -1}, "start_step=-1"),
    ({"start_step": 5, "delay_steps": 2}, "one of them"),
    ({"stages": ()}, "stages"),
    ({"stages": ("decode", "decode")}, "twice"),
    ({"stages": ("tp0",)}, "stage name"),
    ({"activities": ("gpu",)}, "activities"),
    ({"activities": ("device",)}, "'cpu' backend cannot record"),
    ({"profiler_kwargs": {"bogus": 1}}, "not accepted by the 'cpu' backend"),
    ({"schedule": "1,1,1"}, "step windows"),
    ({"bogus_option": True}, "unknown session option"),
    ({"name": "has space"}, "not a run id"),
    ({"max_trace_mb": 0}, "max_trace_mb=0"),
])
def test_bad_requests_fail_before_they_are_queued(controller: npp.Controller, options: dict[str, Any],
                                                  message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        controller.request(**options)
    assert controller.captures == []
    controller.step()
    assert not controller.capturing


def test_a_start_step_already_passed_is_refused(controller: npp.Controller) -> None:
    for _ in range(4):
        controller.step()
    with pytest.raises(ConfigError, match=r"start_step=2 has passed: the engine is at step 3; allowed: 4 or later"):
        controller.request(start_step=2)


def test_names_are_unique_per_controller(controller: npp.Controller) -> None:
    controller.request(steps=1, name="c2")
    controller.stop()
    assert controller.request(steps=1, queue=True).name == "c3"  # the automatic name skips the taken one
    with pytest.raises(ConfigError, match="name='c2' was used"):
        controller.request(steps=1, name="c2", queue=True)


# -- stopping ---------------------------------------------------------------------------------


def test_stop_ends_the_capture_at_the_next_step(controller: npp.Controller) -> None:
    engine = MockEngine(controller, stages=lambda i: None)
    capture = controller.request(steps=100)
    engine.run(3)
    assert controller.stop() is capture
    engine.run(3)
    capture.wait(30)
    assert capture.cut_short
    assert step_ranges(traces(capture)[0]) == ["ProfilerStep#0", "ProfilerStep#1", "ProfilerStep#2"]
    assert len(capture.summary().steps) == 3
    assert capture.summary().metadata["capture"]["cut_short"] is True


def test_stop_cancels_captures_still_waiting(controller: npp.Controller) -> None:
    waiting = controller.request(steps=2, start_step=50)
    assert controller.stop() is None
    assert waiting.done and waiting.state == "done"
    with pytest.raises(SessionError, match="cancelled"):
        waiting.wait(1)


def test_close_finishes_a_running_capture(tmp_path: Path) -> None:
    ctl = npp.Controller(output_dir=tmp_path)
    engine = MockEngine(ctl, stages=lambda i: None)
    capture = ctl.request(steps=50)
    engine.run(4)
    ctl.close()
    assert capture.done and capture.cut_short
    assert len(step_ranges(traces(capture)[0])) == len(capture.summary().steps) == 4
    ctl.step()  # a closed controller's step() does nothing
    with pytest.raises(SessionError, match="closed"):
        ctl.request()


def test_close_from_another_thread_lets_the_loop_thread_end_it(tmp_path: Path) -> None:
    ctl = npp.Controller(output_dir=tmp_path)
    engine = MockEngine(ctl, stages=lambda i: None)
    capture = ctl.request(steps=10_000)
    engine.run(2)
    loop_threads: list[str] = []
    original = Session._halt

    def halt(self: Session) -> list[BaseException]:
        loop_threads.append(threading.current_thread().name)
        return original(self)

    closer = threading.Thread(target=ctl.close, name="closer")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Session, "_halt", halt)
        closer.start()
        engine.run(500, until=lambda: capture.state != "running")
        closer.join(30)
    assert loop_threads == [threading.current_thread().name]
    assert capture.done and len(capture.summary().steps) == len(step_ranges(traces(capture)[0]))


def test_wait_times_out_and_cancel_only_waiting(controller: npp.Controller) -> None:
    capture = controller.request(steps=2, start_step=10)
    with pytest.raises(TimeoutError, match="not done"):
        capture.wait(0.01)
    assert capture.cancel() and not capture.cancel()


# -- work off the loop thread -------------------------------------------------------------------


def test_summary_and_compression_run_off_the_loop_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writers: list[str] = []
    original = Session._write_summary

    def write_summary(self: Session) -> None:
        writers.append(threading.current_thread().name)
        original(self)

    monkeypatch.setattr(Session, "_write_summary", write_summary)
    with npp.Controller(output_dir=tmp_path, gzip=True, report=True) as ctl:
        engine = MockEngine(ctl, stages=lambda i: None)
        capture = ctl.request(steps=2)
        engine.run(4)
        files = capture.wait(30)
    assert writers == ["npuprofile-capture-worker"]
    (trace,) = traces(capture)
    assert trace.name.endswith(".pt.trace.json.gz") and step_ranges(trace) == ["ProfilerStep#0", "ProfilerStep#1"]
    assert not list(tmp_path.glob("*.pt.trace.json"))  # the plain export was replaced
    assert any(f.endswith(".report.html") for f in files)
    assert capture.summary().ops, "the background worker reads the op table"


def test_unselected_rank_captures_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "0")
    with npp.Controller(output_dir=tmp_path, ranks="1") as ctl:
        capture = ctl.request(steps=2)
        assert capture.done and not capture.selected and capture.wait(1) == []
        for _ in range(4):
            ctl.step()
    assert list(tmp_path.iterdir()) == []


def test_a_session_already_running_makes_the_capture_fail_clearly(tmp_path: Path) -> None:
    with npp.Controller(output_dir=tmp_path / "ctl") as ctl:
        capture = ctl.request(steps=2)
        with npp.session(output_dir=tmp_path / "own", trace=False):
            ctl.step()
        with pytest.raises(SessionError, match="already active"):
            capture.wait(10)


def test_controller_settings_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NPUPROFILE_CONTROLLER_STEPS", "7")
    monkeypatch.setenv("NPUPROFILE_MAX_TRACE_MB", "12.5")
    with npp.Controller(output_dir=tmp_path) as ctl:
        assert ctl.default_steps == 7 and ctl.max_trace_mb == 12.5
        assert ctl.request().steps == 7
    monkeypatch.setenv("NPUPROFILE_CONTROLLER_STEPS", "zero")
    with pytest.raises(ConfigError, match="NPUPROFILE_CONTROLLER_STEPS='zero'"):
        npp.Controller(output_dir=tmp_path)


def test_controller_is_public(tmp_path: Path) -> None:
    assert npp.Controller is _controller.Controller and "Controller" in npp.__all__ and "Capture" in npp.__all__
