"""The backend conformance suite (npuprofile.testing): passes for CPU, and can fail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from npuprofile.backends.base import OpStat, Timer, Trace
from npuprofile.backends.cpu import CpuBackend
from npuprofile.backends.registry import backends
from npuprofile.backends.torch_profiler import TorchProfilerTrace
from npuprofile.testing import CHECKS, check_backend
from tests.fakes import ManualClock


def test_cpu_backend_conforms(tmp_path: Path) -> None:
    report = check_backend(backends.get("cpu"), tmp_path).raise_for_failures()
    names = [result.name for result in report.results]
    assert names == ["identity", "probe", "workload", *CHECKS]
    assert CHECKS == ("versions", "options", "timer", "synchronize", "trace", "ranges", "schedule", "op_table",
                      "isolation")
    assert list(tmp_path.glob("conformance.*.pt.trace.json"))
    assert len(list(tmp_path.glob("conformance-isolation.*.pt.trace.json"))) == 2
    assert report.backend == "cpu"


class _SilentTrace(TorchProfilerTrace):
    def export(self, profiler: Any) -> None:
        """Writes nothing."""

    def op_table(self, limit: int) -> list[Any]:
        return [("aten::mm", 1)]


class _BrokenBackend(CpuBackend):
    name = "broken"
    trace_class = _SilentTrace

    def timer(self) -> Timer:
        return ManualClock(now=1_000_000, tick=-10)  # runs backwards


def test_broken_backend_fails_the_named_checks(tmp_path: Path) -> None:
    report = check_backend(_BrokenBackend(), tmp_path)
    assert {failure.name for failure in report.failures} == {"timer", "trace", "schedule", "op_table", "isolation"}
    with pytest.raises(AssertionError, match="marks are not monotonic"):
        report.raise_for_failures()
    details = {failure.name: failure.detail for failure in report.failures}
    assert details["trace"] == "AssertionError: no trace was written or reported"
    assert details["op_table"] == "AssertionError: op_table() rows are not OpStat"


class _SharedTrace(Trace):
    """A trace that reports every file of the process: what keeping state on the backend leads to."""

    found: list[Path] = []

    def __init__(self, sink: Any) -> None:
        self.sink = sink

    def start(self) -> None:
        path = self.sink.write(".pt.trace.json", lambda tmp: tmp.write_text("{}"))
        _SharedTrace.found.append(path)

    def step(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def push(self, name: str) -> Any:
        return name

    def pop(self, handle: Any) -> None:
        pass

    def collect(self) -> list[Path]:
        for path in _SharedTrace.found:
            self.sink.add(path)
        return list(self.sink.paths)

    def op_table(self, limit: int) -> list[OpStat]:
        return []


class _LeakyBackend(CpuBackend):
    name = "leaky"

    def open_trace(self, config: Any, options: Any, sink: Any) -> Trace:
        return _SharedTrace(sink)


def test_a_trace_reporting_an_earlier_trace_files_fails_isolation(tmp_path: Path) -> None:
    _SharedTrace.found = []
    report = check_backend(_LeakyBackend(), tmp_path)
    assert [failure.name for failure in report.failures] == ["isolation"]
    assert "the second trace reports the first one's files" in report.failures[0].detail


def test_unavailable_backend_stops_after_probe(tmp_path: Path) -> None:
    class Missing(CpuBackend):
        name = "missing"

        def probe(self) -> str | None:
            return "no such device"

    report = check_backend(Missing(), tmp_path)
    assert [r.name for r in report.results] == ["identity", "probe"]
    assert report.failures[0].detail == "AssertionError: backend unavailable here: no such device"


def test_not_a_backend_fails_identity(tmp_path: Path) -> None:
    report = check_backend(object(), tmp_path)  # type: ignore[arg-type]
    assert [(r.name, r.ok) for r in report.results] == [("identity", False)]
    assert "is not an npuprofile Backend" in report.results[0].detail


def test_check_adapter_is_a_deprecated_alias(tmp_path: Path) -> None:
    import npuprofile.testing as testing

    with pytest.warns(DeprecationWarning, match="check_adapter is deprecated; use npuprofile.testing.check_backend"):
        alias = testing.check_adapter
    assert alias is check_backend
