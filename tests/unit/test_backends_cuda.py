"""The CUDA backend: logic checked with mocks everywhere, the real thing on a GPU (``-m cuda``)."""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.cuda.nvtx
import torch.profiler

from npuprofile import profile_region, session
from npuprofile.backends.base import HostTimer
from npuprofile.backends.cuda import ENV_NVTX, CudaBackend, CudaOptions
from npuprofile.backends.registry import backends
from npuprofile.errors import ConfigError
from npuprofile.sessions import config as _config
from npuprofile.sessions.files import TraceSink
from npuprofile.testing import check_backend
from tests.npu_fixtures import fake_torch_npu  # noqa: F401

HAS_CUDA = torch.cuda.is_available()
needs_gpu = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")


# -- options -----------------------------------------------------------------------------------


def parse_cuda_options(value: Any, environ: dict[str, str]) -> CudaOptions:
    return CudaBackend().options(value, environ)


def test_nvtx_option_from_dict_env_and_object() -> None:
    assert parse_cuda_options(None, {}) == CudaOptions(nvtx=False)
    assert parse_cuda_options(None, {ENV_NVTX: "1"}).nvtx is True
    assert parse_cuda_options({"nvtx": False}, {ENV_NVTX: "yes"}).nvtx is False
    given = CudaOptions(nvtx=True)
    assert parse_cuda_options(given, {ENV_NVTX: "0"}) is given
    assert ENV_NVTX == "NPUPROFILE_CUDA_NVTX"
    with pytest.raises(ConfigError, match="cuda nvtx='sometimes' is not a boolean"):
        CudaOptions(nvtx="sometimes")


@pytest.mark.parametrize(
    ("value", "environ", "message"),
    [
        ({"nvtx": "sometimes"}, {}, "cuda nvtx='sometimes' is not a boolean"),
        (None, {ENV_NVTX: "maybe"}, "NPUPROFILE_CUDA_NVTX='maybe' is not a boolean"),
        ({"nvxt": True}, {}, "cuda option(s) ['nvxt'] unknown; allowed: nvtx"),
        ("nvtx", {}, "cuda='nvtx' is not allowed; allowed: None, a dict or npuprofile.backends.cuda.CudaOptions"),
    ],
)
def test_bad_cuda_options_are_refused(value: Any, environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_cuda_options(value, environ)
    assert message in str(caught.value)


def test_cuda_options_are_validated_even_when_another_backend_runs() -> None:
    with pytest.raises(ConfigError, match="cuda nvtx=2"):
        session(backend="cpu", cuda={"nvtx": 2})


# -- availability -------------------------------------------------------------------------------------


@pytest.mark.skipif(HAS_CUDA, reason="checks the reason given without CUDA")
def test_unavailable_without_cuda_says_why() -> None:
    reason = backends.load("cuda").unavailable_reason()
    assert reason is not None
    if torch.version.cuda is None:
        assert reason == f"torch {torch.__version__} is a build without CUDA ({backends.entries()['cuda'].hint})"
    else:
        assert "torch.cuda.is_available() is False" in reason


def test_probe_requires_a_cuda_build_even_if_is_available_is_patched(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch_npu's transfer_to_npu can make torch.cuda.is_available() True on a build without CUDA."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    assert "build without CUDA" in (CudaBackend().probe() or "")
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    assert CudaBackend().probe() is None


# -- the profiler gets only stock objects -----------------------------------------------------------------


def test_cuda_profiler_kwargs_are_stock_only(
    fake_torch_npu: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even with torch_npu imported and NPU options given, nothing of torch_npu reaches torch.profiler."""
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(torch.profiler, "profile", lambda **kwargs: seen.append(kwargs) or object())
    backend = CudaBackend()
    options = backend.options({"nvtx": True}, {})
    config = _config.resolve(environ={}, output_dir=str(tmp_path), record_shapes=True,
                             schedule=_config.schedule(wait=1, warmup=1, active=2))
    backend.validate(config, options)
    trace = backend.open_trace(config, options, TraceSink(tmp_path, "stem"))
    (kwargs,) = seen
    stock = inspect.signature(torch.profiler.profiler.profile).parameters
    assert set(kwargs) <= set(stock)
    assert kwargs["activities"] == [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    assert kwargs["record_shapes"] is True
    assert callable(kwargs["on_trace_ready"]) and trace.profile is not None
    assert "experimental_config" not in kwargs
    assert kwargs["schedule"].__module__ == "torch.profiler.profiler"
    for value in kwargs.values():
        assert not (getattr(type(value), "__module__", "") or "").startswith("torch_npu")


def test_cuda_trace_handler_writes_through_the_sink_atomically(tmp_path: Path) -> None:
    class Exporter:
        def export_chrome_trace(self, path: str) -> None:
            Path(path).write_text('{"traceEvents": []}')

    sink = TraceSink(tmp_path, "stem", gzip=True)
    trace = CudaBackend().open_trace(_config.resolve(environ={}, output_dir=str(tmp_path)), CudaOptions(), sink)
    trace.export(Exporter())
    assert trace.collect() == sink.paths
    (path,) = sink.paths
    assert path.name.endswith(".pt.trace.json.gz") and path.exists()
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no temporary file left behind"


# -- markers and timing, with mocks -----------------------------------------------------------------------


def test_nvtx_ranges_pair_with_regions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    log: list[tuple[str, Any]] = []
    ids = iter(range(100, 200))

    def start(name: str) -> int:
        range_id = next(ids)
        log.append(("start", (name, range_id)))
        return range_id

    monkeypatch.setattr(torch.cuda.nvtx, "range_start", start)
    monkeypatch.setattr(torch.cuda.nvtx, "range_end", lambda range_id: log.append(("end", range_id)))
    monkeypatch.setattr(torch.profiler, "profile", lambda **kwargs: object())
    backend = CudaBackend()
    config = _config.resolve(environ={}, output_dir=str(tmp_path))
    first = backend.open_trace(config, CudaOptions(nvtx=True), TraceSink(tmp_path, "first"))
    second = backend.open_trace(config, CudaOptions(nvtx=False), TraceSink(tmp_path, "second"))
    push, pop = first.markers()  # what a tracing session calls per region
    outer = push("outer")
    inner = push("inner")
    pop(inner)
    pop(outer)
    assert log == [("start", ("outer", 100)), ("start", ("inner", 101)), ("end", 101), ("end", 100)]
    log.clear()
    push, pop = second.markers()  # a second trace of the same backend, opened meanwhile, without NVTX
    pop(push("plain"))
    second.pop(second.push("plain"))
    assert log == []
    first.pop(first.push("again"))  # the first trace keeps its own choice
    assert log == [("start", ("again", 102)), ("end", 102)]


def test_sessions_in_sequence_keep_their_own_nvtx_choice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """NVTX on in one session, off in the next, on the same (process-wide) backend object."""
    starts: list[str] = []
    monkeypatch.setattr(CudaBackend, "probe", lambda self: None)
    monkeypatch.setattr(CudaBackend, "activity_map", lambda self: {"cpu": [torch.profiler.ProfilerActivity.CPU], "device": []})
    monkeypatch.setattr(CudaBackend, "timer", lambda self: HostTimer())
    monkeypatch.setattr(CudaBackend, "synchronize", lambda self: None)
    monkeypatch.setattr(torch.cuda.nvtx, "range_start", lambda name: starts.append(name) or len(starts))
    monkeypatch.setattr(torch.cuda.nvtx, "range_end", lambda range_id: None)
    used = []
    for nvtx in (True, False, True):
        with session(backend="cuda", output_dir=tmp_path / str(nvtx), cuda={"nvtx": nvtx}) as profile:
            with profile_region(f"nvtx-{nvtx}"):
                pass
        used.append(profile.backend)
        assert profile.summary().metadata["backend_options"] == {"nvtx": nvtx}
        assert not profile.degraded
    assert used[0] is used[1] is used[2]
    assert starts == ["nvtx-True", "nvtx-True"]


class _FakeCudaEvent:
    created: list["_FakeCudaEvent"] = []

    def __init__(self, enable_timing: bool = False) -> None:
        self.enable_timing = enable_timing
        self.when: float | None = None
        self.synchronized = 0
        _FakeCudaEvent.created.append(self)

    def record(self, stream: Any = None) -> None:
        self.when = time.perf_counter()

    def synchronize(self) -> None:
        self.synchronized += 1

    def elapsed_time(self, end: "_FakeCudaEvent") -> float:
        assert self.when is not None and end.when is not None
        return 2.5  # milliseconds, whatever the clock says


def test_event_timer_records_without_sync_and_flushes_once(monkeypatch: pytest.MonkeyPatch) -> None:
    _FakeCudaEvent.created.clear()
    monkeypatch.setattr(torch.cuda, "Event", _FakeCudaEvent)
    syncs: list[int] = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: syncs.append(1))
    timer = CudaBackend().timer()
    assert timer.host_clock is False
    marks = [timer.mark() for _ in range(4)]
    assert all(m.enable_timing and m.when is not None for m in marks)
    assert sum(m.synchronized for m in marks) == 0, "mark() must not wait for the device"
    timer.flush()
    assert [m.synchronized for m in marks] == [0, 0, 0, 1]
    assert syncs == []
    assert timer.elapsed_ns(marks[0], marks[1]) == 2_500_000


def test_session_on_mocked_cuda_resolves_regions_through_events(monkeypatch: pytest.MonkeyPatch) -> None:
    _FakeCudaEvent.created.clear()
    monkeypatch.setattr(CudaBackend, "probe", lambda self: None)
    monkeypatch.setattr(torch.cuda, "Event", _FakeCudaEvent)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    with session(backend="cuda", trace=False) as profile:
        for _ in profile.steps(range(3)):
            with profile_region("r"):
                pass
    (stats,) = profile.summary().regions
    assert stats.count == 3 and stats.total_ns == 3 * 2_500_000


# -- on a real GPU ----------------------------------------------------------------------------------------------


@pytest.mark.cuda
@needs_gpu
def test_cuda_backend_passes_the_conformance_suite(tmp_path: Path) -> None:
    check_backend(backends.get("cuda"), tmp_path).raise_for_failures()


@pytest.mark.cuda
@needs_gpu
def test_cuda_session_traces_gpu_kernels_with_shapes(tmp_path: Path) -> None:
    import json

    left = torch.rand(256, 512, device="cuda")
    right = torch.rand(512, 128, device="cuda")
    with session(backend="cuda", output_dir=tmp_path, record_shapes=True, cuda={"nvtx": True}) as profile:
        for _ in profile.steps(range(3)):
            with profile_region("matmul"):
                torch.mm(left, right)
    (trace,) = profile.trace_paths
    events = json.loads(trace.read_text())["traceEvents"]
    assert any(e.get("cat") == "kernel" for e in events)
    mm = [e for e in events if e.get("name") == "aten::mm"]
    assert mm and mm[0]["args"]["Input Dims"] == [[256, 512], [512, 128]]
    assert profile.summary().regions[0].count == 3
    assert not profile.degraded


@pytest.mark.cuda
@needs_gpu
def test_cuda_event_time_matches_synchronized_wall_time() -> None:
    left = torch.rand(2048, 2048, device="cuda")
    torch.mm(left, left)
    torch.cuda.synchronize()
    with session(backend="cuda", trace=False) as profile:
        start = time.perf_counter_ns()
        with profile_region("mm", sync=True):
            for _ in range(20):
                torch.mm(left, left)
        wall = time.perf_counter_ns() - start
    (stats,) = profile.summary().regions
    assert 0 < stats.total_ns <= wall
    assert stats.total_ns >= 0.5 * wall, (stats.total_ns, wall)
