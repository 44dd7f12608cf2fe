"""Signals and processes: real subprocesses signalled while torch exports, blocked, on threads, forked.

Each job is ``tests/signal_job.py``; each test checks the exit status (the
signal's own, or the job's) and what is on disk afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import load_trace, user_annotations
from tests.processes import interactive_signals

ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "tests" / "signal_job.py"


def start(mode: str, out: Path, sig: int = signal.SIGTERM, *extra: str, env: dict[str, str] | None = None
          ) -> subprocess.Popen[str]:
    environ = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.Popen([sys.executable, str(JOB), mode, str(out), str(int(sig)), *extra], env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=interactive_signals)


def wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        _, err = proc.communicate(timeout=60)
        raise AssertionError(f"job not ready: {line!r}\n{err}")


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def on_disk(out: Path) -> dict[str, list[Path]]:
    names = sorted(out.iterdir()) if out.exists() else []
    return {
        "traces": [p for p in names if p.name.endswith(".pt.trace.json")],
        "summaries": [p for p in names if p.name.endswith(".summary.json")],
        "partial": [p for p in names if ".tmp" in p.name],
    }


def regions_in_summary(path: Path) -> dict[str, int]:
    return {r["name"]: r["count"] for r in json.loads(path.read_text())["regions"]}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("mode", ["export-step", "export-stop"])
def test_signal_during_export_waits_for_it_then_saves_and_ends_by_the_signal(tmp_path, mode, sig) -> None:
    """The handler lands inside torch's export: nothing re-enters the profiler, nothing is lost."""
    code, _, err = finish(start(mode, tmp_path / "out", sig))
    assert code == -sig, err[-3000:]
    assert "no active profiling session" not in err
    files = on_disk(tmp_path / "out")
    assert files["partial"] == [] and len(files["summaries"]) == 1, files
    assert files["traces"], files
    for trace in files["traces"]:  # every trace complete and readable
        load_trace(trace)
    assert regions_in_summary(files["summaries"][0])["work"] >= 3
    if mode == "export-stop":  # the final trace holds the last steps' regions
        assert "work" in {e["name"] for e in user_annotations(load_trace(files["traces"][-1]))}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_a_controller_capture_export_saves_the_capture(tmp_path, sig) -> None:
    """The controller's step() is machinery too: the capture's export ends, its summary is written, then the signal."""
    code, _, err = finish(start("controller-export", tmp_path / "out", sig))
    assert code == -sig, err[-3000:]
    files = on_disk(tmp_path / "out")
    assert files["partial"] == [] and len(files["traces"]) == 1 and len(files["summaries"]) == 1, files
    assert "work" in {e["name"] for e in user_annotations(load_trace(files["traces"][0]))}
    assert regions_in_summary(files["summaries"][0])["work"] == 3


def test_sigterm_saves_a_session_started_on_a_worker_thread(tmp_path) -> None:
    proc = start("worker", tmp_path / "out")
    wait_ready(proc)
    proc.send_signal(signal.SIGTERM)
    code, out, err = finish(proc)
    assert code == -signal.SIGTERM, err[-3000:]
    files = on_disk(tmp_path / "out")
    assert len(files["traces"]) == 1 and len(files["summaries"]) == 1 and files["partial"] == [], files
    assert "work" in {e["name"] for e in user_annotations(load_trace(files["traces"][0]))}  # stopped by its thread
    assert regions_in_summary(files["summaries"][0])["work"] >= 3


def test_a_stalled_worker_thread_costs_at_most_the_flush_timeout(tmp_path) -> None:
    proc = start("worker-stalls", tmp_path / "out", env={"NPUPROFILE_FLUSH_TIMEOUT": "2"})
    wait_ready(proc)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc)
    elapsed = time.monotonic() - sent
    assert code == -signal.SIGTERM, err[-3000:]
    assert elapsed < 2 + 5, elapsed  # the flush timeout, plus interpreter shutdown on a loaded machine
    files = on_disk(tmp_path / "out")
    assert len(files["summaries"]) == 1 and files["partial"] == [], files
    summary = json.loads(files["summaries"][0].read_text())
    assert summary["regions"][0]["count"] >= 3
    assert any("last trace not written" in d for d in summary["metadata"]["degraded"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_process_blocked_in_native_code_still_ends_on_sigterm(tmp_path) -> None:
    """A gloo rendezvous waiting for a missing rank runs no Python code, so no Python handler runs."""
    proc = start("native", tmp_path / "out", signal.SIGTERM, str(free_port()), env={"NPUPROFILE_FLUSH_TIMEOUT": "3"})
    wait_ready(proc)
    time.sleep(1.0)  # well inside the rendezvous
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc)
    elapsed = time.monotonic() - sent
    assert code == -signal.SIGTERM, err[-3000:]
    assert elapsed < 3 + 5, elapsed  # the flush timeout (plus shutdown on a loaded machine); the rendezvous waits 60 s
    files = on_disk(tmp_path / "out")
    assert len(files["summaries"]) == 1 and files["partial"] == [], files
    assert regions_in_summary(files["summaries"][0]) == {"work": 3}


def test_an_export_that_never_ends_is_cut_at_the_flush_timeout(tmp_path) -> None:
    proc = start("export-hangs", tmp_path / "out", env={"NPUPROFILE_FLUSH_TIMEOUT": "2"})
    wait_ready(proc)
    time.sleep(0.5)  # into the export
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc)
    elapsed = time.monotonic() - sent
    assert code == -signal.SIGTERM, err[-3000:]
    assert elapsed < 2 + 5, elapsed
    files = on_disk(tmp_path / "out")
    assert files["partial"] == [] and files["traces"] == [], files  # the half-written trace is removed
    summary = json.loads(files["summaries"][0].read_text())
    # kept when the export began and written by the watchdog, saying why the trace is missing
    assert {r["name"]: r["count"] for r in summary["regions"]} == {"work": 3}
    assert any(d.startswith("last trace not written: SIGTERM") for d in summary["metadata"]["degraded"]), summary


@pytest.mark.parametrize("mode, expected", [("user-after-import", 3), ("user-after-start", 3), ("ignored", 0)])
def test_the_users_own_sigterm_handling_is_kept(tmp_path, mode, expected) -> None:
    proc = start(mode, tmp_path / "out")
    wait_ready(proc)
    proc.send_signal(signal.SIGTERM)
    code, out, err = finish(proc)
    assert code == expected, err[-3000:]
    files = on_disk(tmp_path / "out")
    assert len(files["traces"]) == 1 and len(files["summaries"]) == 1, files  # saved by the with block or at exit
    assert regions_in_summary(files["summaries"][0]) == {"work": 3}
    assert (tmp_path / "out" / "user-handler-ran").exists() == (mode != "ignored")
    assert ("done" in out) == (mode == "ignored")


def test_a_forked_child_leaves_the_parents_session_alone(tmp_path) -> None:
    code, out, err = finish(start("fork", tmp_path / "out"))
    assert code == 0, err[-3000:]
    lines = dict(line.split(" ", 1) for line in out.split("\n") if " " in line)
    assert lines["child-status"] == "7"  # its own status: no abort, no hang in the parent's profiler
    child_pid, child_count = lines["child"].split()
    assert child_count == "1"  # the child's own session saw only its own region
    files = on_disk(tmp_path / "out")
    by_pid: dict[str, list[str]] = {}
    for path in files["traces"] + files["summaries"]:
        by_pid.setdefault(path.name.split("_")[-1].split(".")[0], []).append(path.name)
    assert sorted(len(v) for v in by_pid.values()) == [2, 2], by_pid  # one trace + summary per process
    assert child_pid in by_pid
    parent = next(p for p in files["summaries"] if f"_{child_pid}." not in p.name)
    assert regions_in_summary(parent) == {"work": 3}  # the child's use of the parent's session left no mark
