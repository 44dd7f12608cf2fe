"""Reliability: profiling failures never reach the workload; nothing collected is lost."""

from __future__ import annotations

import asyncio
import errno
import json
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import npuprofile as npp
from npuprofile.backends.cpu import CpuBackend
from npuprofile.errors import ConfigError, SessionError
from npuprofile.sessions import files as _output
from tests.conftest import load_trace, user_annotations
from tests.processes import interactive_signals, read_line, wait_exit

ROOT = Path(__file__).resolve().parents[2]


class FaultyBackend(CpuBackend):
    """The CPU backend with a fault injected at one point of the profiling machinery."""

    fault: str = ""

    def open_trace(self, config, options, sink):
        if self.fault == "create":
            raise RuntimeError("injected: profiler construction failed")
        trace = super().open_trace(config, options, sink)
        if self.fault == "start":
            trace.start = _raiser(RuntimeError("injected: profiler start failed"))
        if self.fault == "stop":
            original_stop = trace.stop

            def stop():
                original_stop()
                raise RuntimeError("injected: profiler stop failed")

            trace.stop = stop
        if self.fault == "export":
            trace.profile.export_chrome_trace = _raiser(OSError(errno.ENOSPC, "No space left on device"))
        if self.fault == "marker":
            push, pop = trace.markers()
            trace.markers = lambda: (_raiser(RuntimeError("injected: marker failed")), pop)
        return trace


def _raiser(exc):
    def fail(*args, **kwargs):
        raise exc

    return fail


FAULTS = ["create", "start", "stop", "export", "marker"]


def faulty(fault: str) -> FaultyBackend:
    backend = FaultyBackend()
    backend.fault = fault
    npp.backends.register("faulty", backend, replace=True)
    return backend


def workload() -> float:
    with npp.profile_region("work"):
        return float((torch.ones(16, 16) @ torch.ones(16, 16)).sum())


@pytest.mark.parametrize("fault", FAULTS)
def test_machinery_failure_degrades_but_never_reaches_workload(tmp_path, caplog, fault) -> None:
    faulty(fault)
    results = []
    with npp.session(backend="faulty", output_dir=tmp_path) as s:
        for _ in s.steps(range(3)):
            results.append(workload())
    assert results == [256.0 * 16] * 3  # the workload's results are unchanged
    assert s.degraded, "the session must mark itself degraded"
    assert s.summary().region("work").count == 3  # region statistics survive the fault
    warnings = [
        r for r in caplog.records
        if r.levelname == "WARNING" and "injected" in r.getMessage() or "No space" in r.getMessage()
    ]
    assert len(warnings) == 1, "the failure is logged once, with its cause"
    assert "DEGRADED" in str(s.summary())


@pytest.mark.parametrize("fault", FAULTS)
def test_strict_mode_raises_instead(tmp_path, fault) -> None:
    faulty(fault)
    with pytest.raises(SessionError, match="injected|No space"):
        with npp.session(backend="faulty", output_dir=tmp_path, strict=True) as s:
            for _ in s.steps(range(2)):
                workload()


def test_strict_from_environment(tmp_path, monkeypatch) -> None:
    faulty("export")
    monkeypatch.setenv("NPUPROFILE_STRICT", "1")
    with pytest.raises(SessionError, match="No space"):
        with npp.session(backend="faulty", output_dir=tmp_path):
            workload()


def test_failed_export_leaves_no_partial_file(tmp_path) -> None:
    faulty("export")
    with npp.session(backend="faulty", output_dir=tmp_path) as s:
        workload()
    assert s.trace_paths == []
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name or p.name.endswith(".pt.trace.json")] == []
    assert all(p.exists() for p in s.summary_paths)  # the summary is still written


def test_output_dir_removed_mid_run_is_recreated(tmp_path) -> None:
    out = tmp_path / "traces"
    with npp.session(output_dir=out, schedule=npp.schedule(active=1)) as s:
        for step in s.steps(range(4)):
            workload()
            if step == 1:
                shutil.rmtree(out)
    assert not s.degraded
    assert len(s.trace_paths) >= 4 and all(p.exists() for p in s.trace_paths[2:])


def test_user_exception_propagates_unchanged_and_everything_is_saved(tmp_path) -> None:
    class UserError(Exception):
        pass

    error = UserError("from the model")
    with pytest.raises(UserError) as info:
        with npp.session(output_dir=tmp_path) as s:
            with npp.profile_region("outer"):
                with npp.profile_region("inner"):
                    raise error
    assert info.value is error
    assert info.traceback[-1].name == "test_user_exception_propagates_unchanged_and_everything_is_saved"
    assert npp.current_region() is None
    names = {e["name"] for e in user_annotations(load_trace(s.trace_paths[0]))}
    assert {"outer", "inner"} <= names
    saved = json.loads(s.summary_paths[0].read_text())
    assert {r["name"] for r in saved["regions"]} == {"outer", "inner"}


def test_atomic_write_keeps_previous_file_on_failure(tmp_path) -> None:
    target = tmp_path / "summary.json"
    _output.atomic_write_text(target, "old")

    def crash(tmp: Path) -> None:
        tmp.write_text("half-writ")
        raise OSError(errno.EIO, "crash mid-write")

    with pytest.raises(OSError):
        _output.atomic_write(target, crash)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


SUBPROCESS_JOB = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {root!r})
    import npuprofile as npp
    from tests.processes import await_signal
    mode = sys.argv[1]
    if mode == "chained":
        signal.signal(signal.SIGTERM, lambda s, f: (open(os.path.join({out!r}, "user-handler-ran"), "w").close(), sys.exit(3)))
    session = npp.session(output_dir={out!r})
    session.start()
    for _ in range(3):
        with npp.profile_region("before-signal"):
            sum(range(1000))
    print("ready", flush=True)
    if mode == "exit":
        sys.exit(0)
    await_signal()
    """
)


def run_job(tmp_path: Path, mode: str, send: int | None) -> subprocess.CompletedProcess:
    script = tmp_path / "job.py"
    out = tmp_path / "out"
    script.write_text(SUBPROCESS_JOB.format(root=str(ROOT), out=str(out)))
    proc = subprocess.Popen([sys.executable, str(script), mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=interactive_signals)
    assert read_line(proc, f"{mode} job starting its session") == "ready"
    if send is not None:
        proc.send_signal(send)
    stdout, stderr = wait_exit(proc, f"{mode} job after signal {send}" if send else f"{mode} job exiting")
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def saved_files(out: Path) -> tuple[list[Path], list[Path]]:
    return sorted(out.glob("*.pt.trace.json")), sorted(out.glob("*.summary.json"))


@pytest.mark.parametrize(
    "mode, send, expected_code",
    [
        ("exit", None, 0),
        ("plain", signal.SIGTERM, -signal.SIGTERM),
        ("plain", signal.SIGINT, -signal.SIGINT),  # Python re-raises SIGINT after KeyboardInterrupt
        ("chained", signal.SIGTERM, 3),
    ],
)
def test_open_session_is_flushed_on_exit_and_signals(tmp_path, mode, send, expected_code) -> None:
    result = run_job(tmp_path, mode, send)
    assert result.returncode == expected_code, result.stderr
    traces, summaries = saved_files(tmp_path / "out")
    assert len(traces) == 1 and len(summaries) == 1, result.stderr
    assert "before-signal" in {e["name"] for e in user_annotations(load_trace(traces[0]))}
    assert json.loads(summaries[0].read_text())["regions"][0]["count"] == 3
    if mode == "chained":
        assert (tmp_path / "out" / "user-handler-ran").exists()
    if send == signal.SIGINT:
        assert "KeyboardInterrupt" in result.stderr  # the signal is not swallowed


def test_files_respect_umask_and_are_never_world_writable(tmp_path) -> None:
    code = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        os.umask(int(sys.argv[1], 8))
        import npuprofile as npp
        with npp.session(output_dir=sys.argv[2]) as s:
            with npp.profile_region("x"):
                pass
        """
    )
    for umask, expected in (("077", 0o600), ("022", 0o644), ("000", 0o664)):
        out = tmp_path / umask
        subprocess.run([sys.executable, "-c", code, umask, str(out)], check=True, capture_output=True)
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
        assert modes and all(not mode & stat.S_IWOTH for mode in modes.values()), modes
        assert set(modes.values()) == {expected}, modes
        assert not stat.S_IMODE(out.stat().st_mode) & stat.S_IWOTH


@pytest.mark.parametrize("run_id", ["../escape", "/abs/path", "a/b", "..", "x" * 201, "ünïcode", "with space"])
def test_run_ids_cannot_escape_output_dir(tmp_path, run_id) -> None:
    with pytest.raises(ConfigError, match="run_id"):
        npp.session(output_dir=tmp_path, run_id=run_id)


@given(text=st.text(min_size=0, max_size=40))
def test_safe_name_never_yields_a_path(text) -> None:
    name = _output.safe_name(text)
    assert name and "/" not in name and "\\" not in name and not name.startswith(".")
    assert Path("/base", name).parent == Path("/base")


def test_hostile_region_names_stay_inside_trace(tmp_path) -> None:
    with npp.session(output_dir=tmp_path / "out") as s:
        for name in ("../../etc/passwd", "/abs", "a\nb", "<script>"):
            with npp.profile_region(name):
                pass
    assert all(p.parent == tmp_path / "out" for p in s.trace_paths + s.summary_paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_non_empty_output_dir_is_used_without_overwriting(tmp_path) -> None:
    keep = tmp_path / "unrelated.txt"
    keep.write_text("mine")
    sessions = []
    for _ in range(2):
        with npp.session(output_dir=tmp_path, run_id="same-run") as s:
            with npp.profile_region("x"):
                pass
        sessions.append(s)
    assert keep.read_text() == "mine"
    first, second = (set(s.trace_paths) for s in sessions)
    assert first.isdisjoint(second)
    assert all(p.exists() for p in first | second)


def test_eight_threads_and_a_hundred_tasks_give_exact_counts() -> None:
    iterations = 2000

    def thread_work() -> None:
        for _ in range(iterations):
            with npp.profile_region("thread"):
                with npp.profile_region("thread.child"):
                    pass

    async def task_work() -> None:
        for _ in range(30):
            with npp.profile_region("task"):
                await asyncio.sleep(0)
                with npp.profile_region("task.child"):
                    await asyncio.sleep(0)

    async def tasks() -> None:
        await asyncio.gather(*(task_work() for _ in range(100)))

    with npp.session(trace=False) as s:
        threads = [threading.Thread(target=thread_work) for _ in range(8)]
        for t in threads:
            t.start()
        asyncio.run(tasks())
        for t in threads:
            t.join()
    summary = s.summary()
    assert summary.region("thread").count == summary.region("thread.child").count == 8 * iterations
    assert summary.region("task").count == summary.region("task.child").count == 3000
    for name in ("thread", "task"):
        parent, child = summary.region(name), summary.region(f"{name}.child")
        assert parent.total_ns >= child.total_ns  # children nest inside their parents
        assert parent.self_ns == pytest.approx(parent.total_ns - child.total_ns, abs=1)


@settings(max_examples=25, deadline=None)
@given(plan=st.lists(st.tuples(st.integers(1, 4), st.integers(0, 3), st.booleans()), min_size=1, max_size=6))
def test_random_thread_interleavings_keep_exact_counts(plan) -> None:
    """Each thread runs nested regions (depth d) n times, raising on some; counts stay exact."""
    npp.backends.reset()
    from npuprofile.core import region as _region

    _region.ACTIVE.clear()
    errors: list[str] = []

    def worker(index: int, depth: int, repeats: int, raises: bool) -> None:
        for _ in range(repeats):
            try:
                nest(index, depth, raises)
            except ValueError:
                pass
            if npp.current_region() is not None:
                errors.append(f"thread {index} left a region open")

    def nest(index: int, depth: int, raises: bool) -> None:
        with npp.profile_region(f"t{index}.d{depth}"):
            if depth > 1:
                nest(index, depth - 1, raises)
            elif raises:
                raise ValueError("inside")

    with npp.session(trace=False) as s:
        threads = [threading.Thread(target=worker, args=(i, *spec)) for i, spec in enumerate(plan)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    expected = {f"t{i}.d{d}": repeats for i, (depth, repeats, _) in enumerate(plan) for d in range(1, depth + 1) if repeats}
    assert {r.name: r.count for r in s.summary().regions} == expected


def test_strict_stop_failure_still_saves_summary(tmp_path) -> None:
    faulty("stop")
    session = npp.session(backend="faulty", output_dir=tmp_path, strict=True).start()
    workload()
    with pytest.raises(SessionError, match="profiler stop failed"):
        session.stop()
    assert session.summary_paths and all(p.exists() for p in session.summary_paths)
    assert session.state == "stopped" and npp.current_region() is None
