"""The NPU backend, exercised against the fake torch_npu (tests/fake_torch_npu)."""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.profiler
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npuprofile import profile_region, schedule, session
from npuprofile.backends.npu.api import describe_import_error
from npuprofile.backends.npu.backend import NpuBackend, NpuOptions, experimental_kwargs
from npuprofile.backends.npu.options import AIC_METRICS, env_var
from npuprofile.backends.registry import backends
from npuprofile.cli.main import main
from npuprofile.errors import BackendUnavailableError, ConfigError
from npuprofile.testing import check_backend
from tests.npu_fixtures import fake_torch_npu, fake_torch_npu_path  # noqa: F401

SHAPES_CONFIG = {  # the experimental config under which NPU traces carry op shapes
    "profiler_level": "Level1",
    "aic_metrics": "ACL_AICORE_NONE",
    "export_type": ["text"],
    "l2_cache": False,
    "op_attr": False,
    "data_simplification": False,
    "record_op_args": False,
    "msprof_tx": False,
    "mstx": False,
    "gc_detect_threshold": None,
}


def parse_npu_options(value: Any, environ: dict[str, str]) -> NpuOptions:
    return NpuBackend().options(value, environ)


def _work(steps: int, profile: Any) -> None:
    left = torch.rand(32, 48)
    right = torch.rand(48, 16)
    for _ in profile.steps(range(steps)):
        with profile_region("matmul"):
            torch.mm(left, right)


def _run(tmp_path: Path, **options: Any) -> Any:
    profile = session(output_dir=tmp_path, record_shapes=True, **options)
    with profile:
        _work(3, profile)
    return profile


# -- availability ---------------------------------------------------------------------------------------


def test_missing_torch_npu_is_reported_with_install_hint() -> None:
    assert importlib.util.find_spec("torch_npu") is None, "the fake must not be importable by default"
    reason = backends.load("npu").unavailable_reason()
    assert reason == "torch_npu not installed (pip install npuprofile[npu])"
    assert backends.entries()["npu"].hint == "pip install npuprofile[npu]"


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        ("oserror", "CANN libraries missing: OSError: libhccl.so: cannot open shared object file"),
        ("runtimeerror", "torch_npu cannot be imported: RuntimeError: ACL stream synchronize failed"),
    ],
)
def test_any_import_failure_makes_npu_unavailable(
    fake_torch_npu_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str, expected: str
) -> None:
    monkeypatch.setenv("FAKE_TORCH_NPU_IMPORT_ERROR", failure)
    backends.reset()
    reason = NpuBackend().unavailable_reason()
    assert reason is not None and reason.startswith(expected)
    with pytest.raises(BackendUnavailableError, match="CANN|cannot be imported"):
        backends.get("npu")
    assert backends.get("auto").name == "cpu"


def test_import_error_of_a_dependency_is_not_called_not_installed() -> None:
    error = ModuleNotFoundError("No module named 'decorator'", name="decorator")
    assert describe_import_error(error).startswith("torch_npu cannot be imported: ModuleNotFoundError")
    cann = ImportError("libascendcl.so: cannot open shared object file")
    assert describe_import_error(cann).startswith("CANN libraries missing: ImportError")


def test_no_visible_npu_is_unavailable(fake_torch_npu: Any) -> None:
    fake_torch_npu._fake.device_count = 0
    reason = NpuBackend().unavailable_reason()
    assert reason is not None and "torch.npu.is_available() is False" in reason
    assert "2.14.0+fake" in reason


def test_auto_prefers_npu_over_cuda(fake_torch_npu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from npuprofile.backends.cuda import CudaBackend

    monkeypatch.setattr(CudaBackend, "probe", lambda self: None)  # as if torch.cuda were aliased to the NPU
    backends.reset()
    assert backends.names()[:3] == ["npu", "cuda", "cpu"]
    assert backends.get("auto").name == "npu"
    fake_torch_npu._fake.device_count = 0
    backends.reset()
    assert backends.get("auto").name == "cuda"


# -- options ------------------------------------------------------------------------------------------------


def test_default_options_are_the_shape_recording_settings() -> None:
    options = NpuOptions()
    kwargs = experimental_kwargs(options)
    assert kwargs == {**{k: v for k, v in SHAPES_CONFIG.items() if k != "mstx"}, "export_type": "text"}
    assert options.analyse is True and options.strict_options is True


def test_env_vars_fill_options_and_dict_keys_win(monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {
        env_var("profiler_level"): "2",
        env_var("aic_metrics"): "pipe_utilization",
        env_var("export_type"): "text,db",
        env_var("analyse"): "no",
        env_var("gc_detect_threshold"): "1.5",
    }
    options = parse_npu_options(None, environ)
    assert options.profiler_level == "Level2"
    assert options.aic_metrics == "ACL_AICORE_PIPE_UTILIZATION"
    assert options.export_type == ("text", "db")
    assert options.analyse is False
    assert options.gc_detect_threshold == 1.5
    options = parse_npu_options({"profiler_level": "1", "analyse": True}, environ)
    assert (options.profiler_level, options.analyse) == ("Level1", True)
    given = NpuOptions(profiler_level="0")
    assert parse_npu_options(given, environ) is given


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"profiler_level": "3"}, "npu profiler_level='3' is not allowed; allowed: none, 0, 1, 2"),
        ({"aic_metrics": "flops"}, "npu aic_metrics='flops' is not allowed; allowed: none, pipe_utilization"),
        ({"export_type": "json"}, "npu export_type='json' is not allowed; allowed: text, db"),
        ({"l2_cache": "maybe"}, "npu l2_cache='maybe' is not a boolean"),
        ({"gc_detect_threshold": -1}, "npu gc_detect_threshold=-1 is not allowed"),
        ({"profiler_level": 0, "aic_metrics": "memory"}, "needs profiler_level 1 or 2"),
        ({"profiler_level": "none"}, "needs mstx=True"),
        ({"op_attr": True}, "op_attr=True needs the db export"),
        ({"level": 1}, "npu option(s) ['level'] unknown; allowed: profiler_level"),
    ],
)
def test_bad_options_are_refused_with_value_and_allowed(value: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_npu_options(value, {})
    assert message in str(caught.value)


def test_bad_env_var_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="NPUPROFILE_NPU_PROFILER_LEVEL='high'"):
        parse_npu_options(None, {"NPUPROFILE_NPU_PROFILER_LEVEL": "high"})


_RAW = {
    "profiler_level": st.sampled_from(["none", "0", "1", "2", "Level1", 2, "5"]),
    "aic_metrics": st.sampled_from([*AIC_METRICS, "ACL_AICORE_L2_CACHE", "bogus"]),
    "export_type": st.sampled_from(["text", "db", "text,db", ["db", "text"], "csv", ""]),
    "l2_cache": st.sampled_from([True, False, "yes", 1]),
    "op_attr": st.booleans(),
    "record_op_args": st.booleans(),
    "data_simplification": st.booleans(),
    "msprof_tx": st.booleans(),
    "mstx": st.booleans(),
    "gc_detect_threshold": st.sampled_from([None, 0, 2.5, -1.0, "x", True]),
}


@pytest.mark.filterwarnings("ignore:The parameter msprof_tx will be deprecated")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.fixed_dictionaries({}, optional=_RAW))
def test_accepted_options_are_used_by_torch_npu_unchanged(fake_torch_npu: Any, raw: dict[str, Any]) -> None:
    """Whatever we accept, torch_npu takes as is (no printed reset); the rest we refuse first."""
    config_cls = fake_torch_npu.profiler._ExperimentalConfig
    fake_torch_npu._fake.reset()
    try:
        options = NpuOptions(**raw)
    except ConfigError:
        return
    kwargs = experimental_kwargs(options, frozenset(inspect.signature(config_cls).parameters))
    made = config_cls(**kwargs)
    assert fake_torch_npu._fake.warnings_printed == []
    assert made.profiler_level == options.profiler_level
    assert made.aic_metrics == options.aic_metrics
    assert sorted(made.export_type) == sorted(options.export_type)
    assert made.op_attr is options.op_attr and made.mstx is options.mstx
    assert made.gc_detect_threshold == options.gc_detect_threshold


def test_torch_npu_alone_would_silently_reset_what_we_refuse(fake_torch_npu: Any, capsys: Any) -> None:
    """The behaviour our validation protects against: a printed warning and a different value."""
    made = fake_torch_npu.profiler._ExperimentalConfig(profiler_level="Level0", aic_metrics="ACL_AICORE_MEMORY_BANDWIDTH")
    assert made.aic_metrics == "ACL_AICORE_NONE"
    assert "reset aic metrics to None" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="needs profiler_level 1 or 2"):
        session(backend="npu", npu={"profiler_level": 0, "aic_metrics": "memory"})


# -- the seed scenario ---------------------------------------------------------------------------------------


def test_npu_profiler_receives_experimental_config_and_npu_handler(fake_torch_npu: Any, tmp_path: Path) -> None:
    fake = fake_torch_npu._fake
    profile = _run(tmp_path, backend="npu")
    (handler_call,) = fake.named("tensorboard_trace_handler")
    assert handler_call["dir_name"] == str(tmp_path)
    assert f".rank{profile.rank}." in handler_call["worker_name"]
    assert handler_call["analyse_flag"] is True
    (profile_call,) = fake.named("profile")
    assert profile_call["record_shapes"] is True
    assert profile_call["activities"] == [
        fake_torch_npu.profiler.ProfilerActivity.CPU,
        fake_torch_npu.profiler.ProfilerActivity.NPU,
    ]
    config = profile_call["experimental_config"]
    assert isinstance(config, fake_torch_npu.profiler._ExperimentalConfig)
    assert {k: getattr(config, k) for k in SHAPES_CONFIG} == SHAPES_CONFIG
    assert fake.warnings_printed == []
    # the handler torch_npu made is what ran: it analysed the data into trace_view.json
    assert len(fake.named("analyse_dir")) == 1
    directories = [p for p in profile.trace_paths if p.is_dir()]
    assert len(directories) == 1 and directories[0].name.endswith("_ascend_pt")
    assert directories[0].name.startswith(profile.file_stem + f"_{os.getpid()}_")
    view = directories[0] / "ASCEND_PROFILER_OUTPUT" / "trace_view.json"
    assert view in profile.trace_paths
    events = json.loads(view.read_text())
    assert isinstance(events, list) and events
    assert all(isinstance(e["ts"], str) for e in events if "ts" in e)
    shaped = [e for e in events if e.get("name") == "aten::mm"]
    assert shaped and shaped[0]["args"]["Input Dims"] == [[32, 48], [48, 16]]
    assert any(e.get("name") == "matmul" for e in events), "region ranges reach the trace"


def test_stock_profiler_never_sees_npu_objects(fake_torch_npu: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same session call on cpu and npu: the stock profiler only ever gets its own kinds of values."""
    stock_calls: list[dict[str, Any]] = []
    real_profile = torch.profiler.profile

    def spy(*args: Any, **kwargs: Any) -> Any:
        stock_calls.append(kwargs)
        return real_profile(*args, **kwargs)

    monkeypatch.setattr(torch.profiler, "profile", spy)
    allowed = set(inspect.signature(real_profile).parameters)
    for backend in ("cpu", "npu"):  # no user code change between the two
        _run(tmp_path / backend, backend=backend, npu=NpuOptions(profiler_level="1"))
    assert stock_calls, "the stock profiler ran (for cpu, and inside the fake for npu)"
    for kwargs in stock_calls:
        assert set(kwargs) <= allowed
        assert kwargs.get("experimental_config") is None
        assert kwargs["activities"] == [torch.profiler.ProfilerActivity.CPU]
        for value in kwargs.values():
            assert not type(value).__module__.startswith("torch_npu")
            handler_module = getattr(value, "__module__", "") or ""
            assert not handler_module.startswith("torch_npu")
    assert stock_calls[0]["record_shapes"] is True
    assert len(fake_torch_npu._fake.named("profile")) == 1
    assert list((tmp_path / "cpu").glob("*.pt.trace.json"))
    assert list((tmp_path / "npu").glob("*_ascend_pt"))


def test_switching_backends_in_one_process_needs_no_code_change(fake_torch_npu: Any, tmp_path: Path) -> None:
    results = {}
    for backend in ("npu", "cpu", "npu"):
        profile = _run(tmp_path / str(len(results)), backend=backend, npu={"profiler_level": 2, "aic_metrics": "memory"},
                       cuda={"nvtx": True})
        results[len(results)] = profile
        assert profile.backend.name == backend
        assert profile.summary().regions[0].count == 3
    configs = fake_torch_npu._fake.named("profile")
    assert [c["experimental_config"].aic_metrics for c in configs] == ["ACL_AICORE_MEMORY_BANDWIDTH"] * 2


# -- installed-version checks -----------------------------------------------------------------------------------


def _old_config(fake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the fake's _ExperimentalConfig look like an older release without ``mstx``."""
    current = fake.profiler._ExperimentalConfig

    class OldConfig(current):  # type: ignore[misc, valid-type]
        def __init__(self, profiler_level="Level0", aic_metrics="ACL_AICORE_NONE", l2_cache=False,
                     msprof_tx=False, data_simplification=True, record_op_args=False, op_attr=False,
                     gc_detect_threshold=None, export_type=None):
            super().__init__(profiler_level=profiler_level, aic_metrics=aic_metrics, l2_cache=l2_cache,
                             msprof_tx=msprof_tx, data_simplification=data_simplification,
                             record_op_args=record_op_args, op_attr=op_attr,
                             gc_detect_threshold=gc_detect_threshold, export_type=export_type or "text")

    monkeypatch.setattr(fake.profiler, "_ExperimentalConfig", OldConfig)


def test_option_unknown_to_installed_torch_npu_is_named_when_strict(
    fake_torch_npu: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _old_config(fake_torch_npu, monkeypatch)
    with pytest.raises(ConfigError, match=r"npu option\(s\) \['mstx'\] not supported by torch_npu 2.14.0\+fake "
                                          r"\(use msprof_tx=True there\)"):
        session(backend="npu", output_dir=tmp_path, npu={"mstx": True})
    assert fake_torch_npu._fake.named("profile") == []


def test_option_unknown_to_installed_torch_npu_is_dropped_once_when_lenient(
    fake_torch_npu: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: Any
) -> None:
    _old_config(fake_torch_npu, monkeypatch)
    caplog.set_level(logging.WARNING, logger="npuprofile")
    profile = _run(tmp_path, backend="npu", npu={"mstx": True, "strict_options": False})
    assert not profile.degraded
    drops = [r for r in caplog.records if "['mstx'] not supported" in r.getMessage()]
    assert len(drops) == 1
    (call,) = fake_torch_npu._fake.named("profile")
    assert not hasattr(call["experimental_config"], "mstx") or call["experimental_config"].mstx is False


def test_value_unsupported_by_installed_torch_npu_is_refused(
    fake_torch_npu: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fake_torch_npu.profiler, "supported_ai_core_metrics", lambda: {"ACL_AICORE_NONE"})
    with pytest.raises(ConfigError, match="aic_metrics='ACL_AICORE_MEMORY_ACCESS' is not supported by torch_npu"):
        session(backend="npu", npu={"aic_metrics": "memory_access"})


def test_gzip_on_npu_is_a_clear_error_before_start(fake_torch_npu: Any, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="gzip=True is not available on the npu backend"):
        session(backend="npu", output_dir=tmp_path, gzip=True)
    assert fake_torch_npu._fake.calls == []
    assert session(backend="cpu", output_dir=tmp_path, gzip=True, npu={}).config.gzip is True


# -- handler, schedule, markers, timing --------------------------------------------------------------------


def test_schedule_is_passed_by_keyword_and_each_cycle_is_reported(fake_torch_npu: Any, tmp_path: Path) -> None:
    profile = session(backend="npu", output_dir=tmp_path, schedule=schedule(wait=1, warmup=1, active=2, repeat=2))
    with profile:
        _work(10, profile)
    (call,) = fake_torch_npu._fake.named("profile")
    made = call["schedule"]
    assert (made.wait, made.warmup, made.active, made.repeat) == (1, 1, 2, 2)
    directories = [p for p in profile.trace_paths if p.is_dir()]
    assert len(directories) == 2
    assert all((d / "ASCEND_PROFILER_OUTPUT" / "trace_view.json") in profile.trace_paths for d in directories)


def test_directories_of_an_earlier_session_are_not_reported_again(fake_torch_npu: Any, tmp_path: Path) -> None:
    first = _run(tmp_path, backend="npu", run_id="same")
    second = _run(tmp_path, backend="npu", run_id="same", npu={"mstx": True})
    assert first.backend is second.backend, "one process-wide backend object"
    first_dirs = {p for p in first.trace_paths if p.is_dir()}
    second_dirs = {p for p in second.trace_paths if p.is_dir()}
    assert len(first_dirs) == len(second_dirs) == 1
    assert not first_dirs & second_dirs
    assert not set(first.trace_paths) & set(second.trace_paths)
    # each session's own marker choice: mstx ranges only while the second ran
    assert [s["message"] for s in fake_torch_npu._fake.named("mstx.range_start")] == ["matmul"] * 3


@pytest.mark.parametrize("verb", ["analyze", "analyse"])
def test_deferred_analysis_then_cli_analyze(fake_torch_npu: Any, tmp_path: Path, capsys: Any, verb: str) -> None:
    profile = _run(tmp_path, backend="npu", npu={"analyse": False})
    (directory,) = profile.trace_paths
    assert directory.is_dir() and not (directory / "ASCEND_PROFILER_OUTPUT").exists()
    assert fake_torch_npu._fake.named("tensorboard_trace_handler")[0]["analyse_flag"] is False
    assert main([verb, str(tmp_path)]) == 0
    view = directory / "ASCEND_PROFILER_OUTPUT" / "trace_view.json"
    assert f"trace: {view}" in capsys.readouterr().out
    assert json.loads(view.read_text())
    assert fake_torch_npu._fake.named("analyse")[0]["profiler_path"] == str(directory)


def test_analyze_errors(fake_torch_npu: Any, tmp_path: Path, capsys: Any) -> None:
    assert main(["analyze", str(tmp_path)]) == 2
    assert "no *_ascend_pt directory" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path / "missing")]) == 2
    (tmp_path / "w_1_20250101000000000_ascend_pt").mkdir()
    assert main(["analyze", str(tmp_path), "--max-process-number", "0"]) == 2
    assert "npuprofile analyze: error: max_process_number=0 is not allowed; allowed: a whole number >= 1" in (
        capsys.readouterr().err
    )
    assert fake_torch_npu._fake.named("analyse") == []


def test_mstx_ranges_follow_regions_when_enabled(fake_torch_npu: Any, tmp_path: Path) -> None:
    fake = fake_torch_npu._fake
    _run(tmp_path / "off", backend="npu")
    assert fake.named("mstx.range_start") == []
    _run(tmp_path / "on", backend="npu", npu={"mstx": True})
    starts, ends = fake.named("mstx.range_start"), fake.named("mstx.range_end")
    assert [s["message"] for s in starts] == ["matmul"] * 3
    assert [e["range_id"] for e in ends] == [s["range_id"] for s in starts]
    assert all(isinstance(s["stream"], fake_torch_npu.npu.Stream) for s in starts)


def test_sync_and_event_timer_use_torch_npu(fake_torch_npu: Any, tmp_path: Path) -> None:
    fake = fake_torch_npu._fake
    backend = backends.get("npu")
    backend.synchronize()
    assert len(fake.named("synchronize")) == 1
    timer = backend.timer()
    assert timer.host_clock is False
    first = timer.mark()
    second = timer.mark()
    assert isinstance(first, fake_torch_npu.npu.Event) and first.enable_timing
    timer.flush()
    assert len(fake.named("event_synchronize")) == 1
    assert timer.elapsed_ns(first, second) >= 0
    with session(backend="npu", output_dir=tmp_path, trace=False) as profile:
        with profile_region("r", sync=True):
            pass
    assert profile.summary().regions[0].count == 1


def test_npu_backend_passes_the_conformance_suite(fake_torch_npu: Any, tmp_path: Path) -> None:
    # the fake has no "npu" tensors: the workload runs on the CPU, the profiler is torch_npu's
    left, right = torch.rand(16, 16), torch.rand(16, 16)
    report = check_backend(backends.get("npu"), tmp_path, workload=lambda: torch.mm(left, right))
    report.raise_for_failures()
    assert [r.name for r in report.results][-4:] == ["ranges", "schedule", "op_table", "isolation"]
    assert len(fake_torch_npu._fake.named("profile")) == 5  # trace, ranges, schedule, isolation x2


# -- npuprofile backends ----------------------------------------------------------------------------------------


def test_backends_cli_with_torch_npu_present(fake_torch_npu: Any, capsys: Any) -> None:
    assert main(["backends", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["npu"]["available"] is True and rows["npu"]["reason"] is None
    assert rows["npu"]["versions"]["torch_npu"] == "2.14.0+fake"
    fake_torch_npu._fake.device_count = 0
    backends.reset()
    assert main(["backends"]) == 0
    npu_line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("npu"))
    assert " no " in npu_line and "torch_npu 2.14.0+fake" in npu_line and "is_available() is False" in npu_line
