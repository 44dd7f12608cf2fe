"""The controller inside a mock serving engine: HTTP control from another thread, SIGTERM, exit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import npuprofile as npp
from npuprofile.errors import SessionError
from tests.conftest import load_trace
from tests.mock_engine import ControlServer, MockEngine, post
from tests.processes import STUCK_S, wait_exit
from tests.unit.test_controller import op_names, step_ranges, traces

ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "tests" / "engine_job.py"


def test_http_requests_from_another_thread_give_full_traces(tmp_path: Path) -> None:
    controller = npp.Controller(output_dir=tmp_path, run_id="served", coords={"tp": 0, "dp": 0})
    engine = MockEngine(controller, pause_s=0.002)
    answers: list[tuple[int, dict[str, Any]]] = []

    def client(port: int) -> None:
        answers.append(post(port, "/start_profile?steps=20&stages=prefill,decode"))
        for _ in range(25):  # bounded: requests while that capture runs are refused
            answers.append(post(port, "/start_profile?steps=4"))
            time.sleep(0.005)
        while not all(c.done for c in server.captures):
            time.sleep(0.01)
        answers.append(post(port, "/start_profile?steps=100&delay_steps=2"))
        deadline = time.monotonic() + 60
        while server.captures[-1].state == "waiting" and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        answers.append(post(port, "/stop_profile"))

    with ControlServer(controller) as server:
        thread = threading.Thread(target=client, args=(server.port,), name="client")
        thread.start()
        engine.run(5000, until=lambda: not thread.is_alive() and all(c.done for c in server.captures))
        thread.join(30)
        engine.run(3)
    controller.close()
    staged, *others, stopped = server.captures
    assert answers[0][0] == 200 and answers[-1] == (200, {"stopped": stopped.name})
    refused = [body["error"] for status, body in answers if status == 409]
    assert refused and all("capture refused: capture 'c" in text for text in refused)
    assert len(refused) + len(others) == 25
    staged.wait(30)
    for stage, other in (("prefill", "aten::tanh"), ("decode", "aten::sigmoid")):
        (trace,) = traces(staged, stage)
        assert len(step_ranges(trace)) == 20 and other not in op_names(trace)
        assert len(staged.summary(stage).steps) == 20
        assert ".rank0.tp0-dp0." + stage + "." in trace.name
    for capture in others:  # accepted once the one before had finished: complete as well
        capture.wait(30)
        assert len(step_ranges(traces(capture)[0])) == len(capture.summary().steps) == 4
    stopped.wait(30)
    assert stopped.cut_short
    (trace,) = traces(stopped)
    first = int(step_ranges(trace)[0].split("#")[1])
    assert first == stopped.start_step and len(step_ranges(trace)) == len(stopped.summary().steps) > 0


def _start(mode: str, out: Path) -> subprocess.Popen[str]:
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NPUPROFILE_")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, str(JOB), mode, str(out)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _terminate_once_capturing(procs: dict[str, subprocess.Popen[str]], out: Path, timeout: float = STUCK_S) -> None:
    """SIGTERM each engine as soon as its ``capturing`` handshake appears (they start in any order)."""
    waiting = list(procs)
    deadline = time.monotonic() + timeout
    while waiting:
        for mode in list(waiting):
            if (out / mode / "capturing").exists():
                procs[mode].send_signal(signal.SIGTERM)
                waiting.remove(mode)
            elif procs[mode].poll() is not None:
                raise AssertionError(f"the {mode} engine ended early ({procs[mode].returncode}):\n"
                                     f"{procs[mode].stderr.read()[-3000:]}")
        if waiting and time.monotonic() > deadline:
            raise AssertionError(f"the engines {waiting} did not start capturing within {timeout:.0f} s")
        time.sleep(0.05)


def _check_flushed(out: Path) -> int:
    (trace,) = out.glob("*.pt.trace.json")
    (summary_path,) = out.glob("*.summary.json")
    assert ".rank0.tp0-dp1." in trace.name
    ranges = step_ranges(trace)
    summary = json.loads(summary_path.read_text())
    assert len(ranges) == len(summary["steps"]) >= 6
    assert summary["metadata"]["capture"]["cut_short"] is True
    assert load_trace(trace)["npuprofile"]["coords"] == {"tp": 0, "dp": 1}
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no temporary files left"
    return len(ranges)


@pytest.mark.slow
def test_sigterm_and_exit_finish_the_running_capture(tmp_path: Path) -> None:
    procs = {mode: _start(mode, tmp_path / mode) for mode in ("sigterm", "thread", "exit")}
    try:
        _terminate_once_capturing({mode: procs[mode] for mode in ("sigterm", "thread")}, tmp_path)
    except AssertionError:
        for proc in procs.values():
            proc.kill()
        raise
    for mode, proc in procs.items():
        _, err = wait_exit(proc, f"the {mode} engine" + (" after SIGTERM" if mode != "exit" else ""))
        expected = 0 if mode == "exit" else -signal.SIGTERM
        assert proc.returncode == expected, f"{mode}: {proc.returncode}\n{err[-3000:]}"
        recorded = _check_flushed(tmp_path / mode)
        if mode == "exit":
            assert recorded == 12


def test_requests_from_many_threads_only_queue(tmp_path: Path) -> None:
    """Threads hammer request() while the loop runs: one capture at a time is accepted, each complete."""
    controller = npp.Controller(output_dir=tmp_path, run_id="eng")
    try:
        engine = MockEngine(controller, stages=lambda i: None)
        accepted: list[npp.Capture] = []
        refused: list[str] = []
        done = threading.Event()

        def client() -> None:
            for _ in range(40):  # bounded
                try:
                    accepted.append(controller.request(steps=2))
                except SessionError as exc:
                    refused.append(str(exc))
                if done.wait(0.002):
                    return

        threads = [threading.Thread(target=client) for _ in range(4)]
        for thread in threads:
            thread.start()
        engine.run(400, until=lambda: not any(t.is_alive() for t in threads))
        done.set()
        for thread in threads:
            thread.join(10)
        engine.run(4)
        assert accepted and refused
        for capture in accepted:
            capture.wait(30)
            assert len(step_ranges(traces(capture)[0])) == 2
            assert len(capture.summary().steps) == 2
    finally:
        controller.close()
