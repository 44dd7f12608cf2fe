"""What a capture collects: activities, profiler_kwargs, memory snapshots, remote output, the size budget."""

from __future__ import annotations

import json
import logging
import pickle
import shutil
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.profiler

import npuprofile as npp
from npuprofile.backends.base import MemoryHistory
from npuprofile.backends.cuda import CudaBackend
from npuprofile.backends.memory import AllocatorHistory
from npuprofile.errors import ConfigError
from npuprofile.sessions import budget as _budget
from npuprofile.sessions import config as _config
from npuprofile.sessions import remote as _remote
from npuprofile.sessions import session as _session
from npuprofile.sessions.files import TraceSink
from tests.conftest import load_trace
from tests.fakes import register_manual
from tests.mock_engine import MockEngine
from tests.npu_fixtures import fake_torch_npu  # noqa: F401
from tests.unit.test_controller import step_ranges, traces


def work() -> None:
    with npp.profile_region("work"):
        torch.mm(torch.ones(16, 16), torch.ones(16, 16))


# -- activities -----------------------------------------------------------------------------------


def test_activities_map_to_each_backends_own_enums(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(torch.profiler, "profile", lambda **kwargs: seen.append(kwargs) or object())
    CPU, CUDA = torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA
    backend = CudaBackend()
    for kinds, expected in [(None, [CPU, CUDA]), (("device",), [CUDA]), (("cpu",), [CPU]), (("device", "cpu"), [CPU, CUDA])]:
        config = _config.resolve(environ={}, output_dir=tmp_path, activities=kinds)
        backend.check(config, backend.options(None, {}))
        backend.open_trace(config, backend.options(None, {}), TraceSink(tmp_path, "s"))
        assert seen.pop()["activities"] == expected
    assert _config.resolve(environ={"NPUPROFILE_ACTIVITIES": "device"}).activities == ("device",)


def test_activities_a_backend_cannot_record_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"activities=\('device',\): the 'cpu' backend cannot record \['device'\]; "
                                          r"allowed: a non-empty selection of \('cpu',\)"):
        npp.session(output_dir=tmp_path, backend="cpu", activities=("device",))
    for bad in ("gpu", (), ["cpu", 3]):
        with pytest.raises(ConfigError, match="activities"):
            npp.session(output_dir=tmp_path, activities=bad)


def test_cpu_only_activity_records_host_ops(tmp_path: Path) -> None:
    with npp.session(output_dir=tmp_path, activities="cpu") as s:
        work()
    events = load_trace(s.trace_paths[0])["traceEvents"]
    assert any(e.get("name") == "aten::mm" for e in events)
    assert s.summary().metadata["options"]["activities"] == ["cpu"]


def test_npu_activities_and_profiler_kwargs(fake_torch_npu: Any, tmp_path: Path) -> None:
    profiler = fake_torch_npu.profiler
    with npp.session(output_dir=tmp_path, backend="npu", activities=("device",),
                     profiler_kwargs={"custom_trace_id_callback": None}) as s:
        work()
    (call,) = fake_torch_npu._fake.named("profile")
    assert call["activities"] == [profiler.ProfilerActivity.NPU]
    assert s.trace_paths
    with pytest.raises(ConfigError, match=r"\['bogus'\] not accepted by the 'npu' backend's profiler; allowed: .*"
                                          r"custom_trace_id_callback"):
        npp.session(output_dir=tmp_path, backend="npu", profiler_kwargs={"bogus": 1})
    with pytest.raises(ConfigError, match="experimental_config.*npu= options"):
        npp.session(output_dir=tmp_path, backend="npu", profiler_kwargs={"experimental_config": None})


# -- profiler_kwargs --------------------------------------------------------------------------------


def test_profiler_kwargs_reach_the_profiler(tmp_path: Path) -> None:
    with npp.session(output_dir=tmp_path, profiler_kwargs={"acc_events": True}) as s:
        work()
        assert s._trace is not None and s._trace.profile.acc_events is True
    assert s.trace_paths and s.summary().metadata["options"]["profiler_kwargs"] == {"acc_events": True}


@pytest.mark.parametrize("given, message", [
    ({"bogus": 1}, r"profiler_kwargs: \['bogus'\] not accepted by the 'cpu' backend's profiler; allowed: .*acc_events"),
    ({"schedule": None}, r"\['schedule'\] set by npuprofile \(use schedule="),
    ({"on_trace_ready": print, "nope": 2}, r"\['nope'\] not accepted .*\['on_trace_ready'\] set by npuprofile"),
])
def test_unknown_profiler_kwargs_fail_before_anything_starts(tmp_path: Path, given: dict[str, Any],
                                                             message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        npp.session(output_dir=tmp_path, profiler_kwargs=given)
    assert list(tmp_path.iterdir()) == []


def test_profiler_kwargs_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _config.resolve(environ={"NPUPROFILE_PROFILER_KWARGS": '{"acc_events": true}'}).profiler_kwargs == {
        "acc_events": True}
    with pytest.raises(ConfigError, match="NPUPROFILE_PROFILER_KWARGS='acc' is not a JSON object"):
        _config.resolve(environ={"NPUPROFILE_PROFILER_KWARGS": "acc"})
    with pytest.raises(ConfigError, match="a dict of keyword names"):
        _config.resolve(profiler_kwargs={"not a name": 1})


def test_every_builtin_backend_checks_against_its_real_signature() -> None:
    allowed = npp.backends.get("cpu").profiler_keywords()
    import inspect

    real = set(inspect.signature(torch.profiler.profile).parameters)
    assert allowed is not None and allowed < real and "acc_events" in allowed and "schedule" not in allowed


# -- memory snapshots ---------------------------------------------------------------------------------


class _History(MemoryHistory):
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def start(self) -> None:
        self.calls.append("start")

    def snapshot(self) -> Any:
        self.calls.append("snapshot")
        return {"segments": [], "device_traces": [[{"action": "alloc", "size": 64}]]}

    def stop(self) -> None:
        self.calls.append("stop")


def test_memory_snapshot_is_written_beside_the_trace(tmp_path: Path) -> None:
    backend = register_manual(npp.backends)
    calls: list[str] = []
    backend.memory_history = lambda: _History(calls)  # type: ignore[method-assign]
    with npp.Controller(output_dir=tmp_path, backend="manual", memory_snapshot=True) as ctl:
        engine = MockEngine(ctl, stages=lambda i: None)
        capture = ctl.request(steps=2)
        engine.run(3)
        files = capture.wait(30)
    (snapshot,) = [Path(f) for f in files if f.endswith(".memory-snapshot.pickle")]
    (summary_file,) = [Path(f) for f in files if f.endswith(".summary.json")]
    assert snapshot.name == summary_file.name.replace(".summary.json", ".memory-snapshot.pickle")
    assert snapshot.name.startswith(capture.run_id + ".rank0.")
    assert pickle.loads(snapshot.read_bytes())["device_traces"][0][0]["size"] == 64
    assert calls == ["start", "snapshot", "stop"]
    assert capture.summary().metadata["memory_snapshot"] == str(snapshot)


def test_memory_snapshot_on_cpu_is_logged_once_and_profiling_goes_on(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    _session._NO_MEMORY_HISTORY.discard("cpu")
    caplog.set_level(logging.WARNING, logger="npuprofile")
    for index in range(2):
        with npp.session(output_dir=tmp_path / str(index), memory_snapshot=True) as s:
            work()
        assert s.trace_paths and not list((tmp_path / str(index)).glob("*.memory-snapshot.pickle"))
    notes = [r.getMessage() for r in caplog.records if "memory_snapshot" in r.getMessage()]
    assert len(notes) == 1 and "'cpu' backend keeps no allocator history" in notes[0]


def test_allocator_history_uses_the_device_modules_api() -> None:
    calls: list[tuple[str, Any]] = []
    module = types.SimpleNamespace(
        _record_memory_history=lambda enabled="all", **kw: calls.append(("record", (enabled, kw))),
        _snapshot=lambda: calls.append(("snapshot", None)) or {"segments": []},
    )
    history = AllocatorHistory(module, max_entries=10)
    history.start()
    assert history.snapshot() == {"segments": []}
    history.stop()
    assert calls == [("record", ("all", {"max_entries": 10})), ("snapshot", None), ("record", (None, {}))]
    import torch.cuda.memory

    cuda = CudaBackend().memory_history()
    assert isinstance(cuda, AllocatorHistory) and cuda.module is torch.cuda.memory
    assert npp.backends.get("cpu").memory_history() is None


def test_npu_memory_snapshot_uses_torch_npu(fake_torch_npu: Any, tmp_path: Path) -> None:
    with npp.session(output_dir=tmp_path, backend="npu", memory_snapshot=True) as s:
        work()
    assert [c for c, _ in fake_torch_npu._fake.calls if c in ("_record_memory_history", "_snapshot")] == [
        "_record_memory_history", "_snapshot", "_record_memory_history"]
    (path,) = tmp_path.glob("*.memory-snapshot.pickle")
    assert pickle.loads(path.read_bytes())["device_traces"][0][0]["action"] == "alloc"
    assert s.summary().metadata["memory_snapshot"] == str(path)


def test_npu_capture_defers_analysis_to_the_worker(fake_torch_npu: Any, tmp_path: Path) -> None:
    with npp.Controller(output_dir=tmp_path, backend="npu") as ctl:
        engine = MockEngine(ctl, stages=lambda i: None)
        capture = ctl.request(steps=3)
        engine.run(4)
        files = capture.wait(30)
    (handler,) = fake_torch_npu._fake.named("tensorboard_trace_handler")
    assert handler["analyse_flag"] is False  # nothing heavy inside the profiler's stop
    (view,) = [Path(f) for f in files if f.endswith("trace_view.json")]
    names = sorted(e["name"] for e in json.loads(view.read_text()) if e.get("name", "").startswith("ProfilerStep#"))
    assert names == ["ProfilerStep#0", "ProfilerStep#1", "ProfilerStep#2"]
    assert len(capture.summary().steps) == 3


# -- output_dir URIs ------------------------------------------------------------------------------------


def test_uri_output_dir_without_fsspec_names_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> Any:
        raise ImportError("No module named 'fsspec'")

    monkeypatch.setattr(_remote, "_fsspec", missing)
    with pytest.raises(ConfigError, match=r"output_dir='gs://bucket/runs' is a URI.*pip install npuprofile\[remote\]"):
        npp.session(output_dir="gs://bucket/runs")
    monkeypatch.setenv("NPUPROFILE_OUTPUT_DIR", "s3://b/x")
    with pytest.raises(ConfigError, match="NPUPROFILE_OUTPUT_DIR='s3://b/x' is a URI"):
        npp.session()
    assert not Path("gs:").exists() and not Path("s3:").exists()


class _FakeFileSystem:
    """fsspec's url_to_fs + makedirs + put, onto a local directory standing in for a bucket."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.puts: list[tuple[str, str]] = []

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        (self.root / path).mkdir(parents=True, exist_ok=exist_ok)

    def put(self, local: str, remote: str, recursive: bool = False) -> None:
        self.puts.append((local, remote))
        source, target = Path(local), self.root / remote
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copyfile(source, target)


def _fake_fsspec(monkeypatch: pytest.MonkeyPatch, root: Path) -> _FakeFileSystem:
    fs = _FakeFileSystem(root)

    def url_to_fs(uri: str) -> tuple[_FakeFileSystem, str]:
        if not uri.startswith("mem://"):
            raise ValueError(f"Protocol not known: {uri.split(':')[0]}")
        return fs, uri[len("mem://"):]

    module = types.ModuleType("fsspec")
    module.core = types.SimpleNamespace(url_to_fs=url_to_fs)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fsspec", module)
    return fs


def test_uri_output_dir_with_fsspec_writes_locally_then_uploads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = _fake_fsspec(monkeypatch, tmp_path / "bucket")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    with npp.session(output_dir="mem://runs/job", run_id="r") as s:
        work()
    assert s.config.upload_to == "mem://runs/job" and s.config.output_dir.is_relative_to(tmp_path / "tmp")
    uploaded = {Path(u).name for u in s.uploaded}
    assert all(u.startswith("mem://runs/job/r.rank0.") for u in s.uploaded)
    assert {p.name for p in (tmp_path / "bucket" / "runs" / "job").iterdir()} == uploaded
    assert any(name.endswith(".pt.trace.json") for name in uploaded) and any(n.endswith(".summary.json") for n in uploaded)
    assert not [p for p in s.config.output_dir.iterdir()], "the local copies are removed once uploaded"
    assert len(fs.puts) == len(uploaded)
    with pytest.raises(ConfigError, match="cannot be opened by fsspec: ValueError: Protocol not known: zz"):
        npp.session(output_dir="zz://x")


def test_capture_files_are_the_uploaded_uris(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_fsspec(monkeypatch, tmp_path / "bucket")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    with npp.Controller(output_dir="mem://runs", run_id="eng") as ctl:
        engine = MockEngine(ctl, stages=lambda i: None)
        capture = ctl.request(steps=2)
        engine.run(3)
        files = capture.wait(30)
    assert files and all(f.startswith("mem://runs/eng-c1.rank0.") for f in files)
    (trace,) = [tmp_path / "bucket" / f[len("mem://"):] for f in files if f.endswith(".pt.trace.json")]
    assert step_ranges(trace) == ["ProfilerStep#0", "ProfilerStep#1"]


# -- the size budget -------------------------------------------------------------------------------------

HEAVY = {"with_stack": True, "profile_memory": True, "record_shapes": True}


def _capture(tmp_path: Path, steps: int, **options: Any) -> npp.Capture:
    with npp.Controller(output_dir=tmp_path, **options) as ctl:
        engine = MockEngine(ctl, stages=lambda i: None)
        capture = ctl.request(steps=steps)
        engine.run(steps + 2)
        capture.wait(60)
    return capture


def _trace_bytes(capture: npp.Capture) -> int:
    return sum(p.stat().st_size for p in traces(capture))


def test_budget_drops_with_stack_first(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    steps = 16
    full = _trace_bytes(_capture(tmp_path / "full", steps, **HEAVY))
    probe = _trace_bytes(_capture(tmp_path / "probe", 1, **HEAVY))  # the first step, as a budget records it
    without_stack = _trace_bytes(_capture(tmp_path / "nostack", steps, **dict(HEAVY, with_stack=False)))
    assert without_stack < full * 0.5, "with_stack must cost enough for this test to mean something"
    # room for the probe and the other steps without stacks, not for all steps with them
    budget_mb = (probe + without_stack * (steps - 1) / steps) * 1.08 / _budget.MIB
    assert budget_mb * _budget.MIB < 0.7 * full
    caplog.set_level(logging.WARNING, logger="npuprofile")
    capture = _capture(tmp_path / "budget", steps, max_trace_mb=budget_mb, **HEAVY)
    meta = capture.summary().metadata["budget"]
    assert meta["dropped"] == ["with_stack"] and meta["steps_kept"] == steps
    assert _trace_bytes(capture) <= 1.1 * budget_mb * _budget.MIB
    probe, rest = sorted(traces(capture), key=lambda p: step_ranges(p)[0])
    assert len(step_ranges(probe)) == 1 and len(step_ranges(probe)) + len(step_ranges(rest)) == steps
    events = load_trace(rest)["traceEvents"]
    assert not [e for e in events if e.get("cat") == "python_function"], "with_stack was dropped"
    assert [e for e in events if e.get("name") == "[memory]"], "profile_memory was kept"
    assert [e for e in events if "Input Dims" in e.get("args", {})], "record_shapes was kept"
    assert len(capture.summary().steps) == steps
    assert capture.summary().metadata["options"]["with_stack"] is False
    notes = [r.getMessage() for r in caplog.records if "max_trace_mb" in r.getMessage()]
    assert len(notes) == 1 and "dropped with_stack" in notes[0]


def test_budget_drops_steps_last_and_stays_within_ten_percent(tmp_path: Path) -> None:
    steps = 40
    light = _trace_bytes(_capture(tmp_path / "light", steps))
    probe = _trace_bytes(_capture(tmp_path / "probe", 1, **HEAVY))
    budget_mb = (probe + light * 0.5) / _budget.MIB  # about half the steps fit, even with every option off
    capture = _capture(tmp_path / "budget", steps, max_trace_mb=budget_mb, **HEAVY)
    summary = capture.summary()
    meta = summary.metadata["budget"]
    assert meta["dropped"] == ["with_stack", "profile_memory", "record_shapes", "steps"]
    kept = meta["steps_kept"]
    assert 0.35 * steps < kept < 0.65 * steps
    recorded = [name for path in traces(capture) for name in step_ranges(path)]
    assert len(recorded) == len(summary.steps) == kept
    size = _trace_bytes(capture)
    assert 0.6 * budget_mb * _budget.MIB <= size <= 1.1 * budget_mb * _budget.MIB


def test_probe_estimates_options_from_one_step(tmp_path: Path) -> None:
    capture = _capture(tmp_path, 1, **HEAVY)
    probe = _budget.measure(traces(capture), compress=False)
    assert probe.readable and probe.on_disk == _trace_bytes(capture)
    assert probe.option_bytes["with_stack"] > 0 and probe.option_bytes["profile_memory"] > 0
    assert probe.option_bytes["record_shapes"] > 0
    assert probe.step_without(_budget.DROP_ORDER) < probe.step
    decision = _budget.decide(probe, _budget.DROP_ORDER, steps_left=3, budget_mb=1000)
    assert decision.dropped == () and decision.steps == 3
    unreadable = _budget.Probe(on_disk=1000, fixed=0.0, step=1000.0, option_bytes={}, readable=False)
    decision = _budget.decide(unreadable, _budget.DROP_ORDER, steps_left=10, budget_mb=5000 / _budget.MIB)
    assert decision.dropped == ("steps",) and decision.steps == 3


def test_budget_estimates_compressed_size_with_gzip(tmp_path: Path) -> None:
    steps = 12
    capture = _capture(tmp_path, steps, gzip=True, max_trace_mb=1000, **HEAVY)
    meta = capture.summary().metadata["budget"]
    assert meta["dropped"] == [] and all(p.name.endswith(".gz") for p in traces(capture))
    # one step compresses a little worse than many: the estimate errs on the safe side
    actual = _trace_bytes(capture)
    assert 0.9 * actual <= meta["estimated_mb"] * _budget.MIB <= 1.4 * actual
