"""The adapter conformance suite (npuprofile.testing): passes for CPU, and can fail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from npuprofile.backends.base import HostTimer
from npuprofile.backends.cpu import CpuAdapter
from npuprofile.backends.registry import backends
from npuprofile.testing import check_adapter
from tests.npu_fixtures import fresh_registry  # noqa: F401


def test_cpu_adapter_conforms(fresh_registry: None, tmp_path: Path) -> None:
    report = check_adapter(backends.get("cpu"), tmp_path).raise_for_failures()
    names = [result.name for result in report.results]
    assert names == ["identity", "probe", "workload", "versions", "options", "timer", "synchronize",
                     "ranges", "schedule", "trace", "op_table"]
    assert list(tmp_path.glob("conformance.*.pt.trace.json"))


class _BackwardsTimer(HostTimer):
    def __init__(self) -> None:
        self._now = 1_000_000

    def mark(self) -> Any:
        self._now -= 10
        return self._now


class _BrokenAdapter(CpuAdapter):
    name = "broken"

    def timer(self) -> HostTimer:
        return _BackwardsTimer()

    def trace_handler(self, sink: Any, options: Any) -> Any:
        return lambda profiler: None  # writes nothing

    def op_table(self, profiler: Any, limit: int) -> list[Any]:
        return [("aten::mm", 1)]


def test_broken_adapter_fails_the_named_checks(tmp_path: Path) -> None:
    report = check_adapter(_BrokenAdapter(), tmp_path)
    assert {failure.name for failure in report.failures} == {"timer", "trace", "op_table"}
    with pytest.raises(AssertionError, match="marks are not monotonic"):
        report.raise_for_failures()


def test_unavailable_adapter_stops_after_probe(tmp_path: Path) -> None:
    class Missing(CpuAdapter):
        name = "missing"

        def probe(self) -> str | None:
            return "no such device"

    report = check_adapter(Missing(), tmp_path)
    assert [r.name for r in report.results] == ["identity", "probe"]
    assert report.failures[0].detail == "AssertionError: backend unavailable here: no such device"
