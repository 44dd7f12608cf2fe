"""The backend protocol's shared pieces: range markers with vendor ranges, trace callbacks, per-session traces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import npuprofile as npp
from npuprofile.backends.base import Trace
from npuprofile.backends.cpu import CpuBackend
from npuprofile.backends.markers import UserAnnotation, VendorRanges, range_markers
from npuprofile.backends.torch_profiler import TorchProfilerTrace
from tests.conftest import load_trace, user_annotations


class _Records:
    """Stands in for the record_function ops: logs what opens and closes."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def push(self, name: str) -> str:
        self.log.append(f"open {name}")
        return f"record:{name}"

    def pop(self, handle: str) -> None:
        self.log.append(f"close {handle}")


def test_vendor_ranges_nest_inside_record_function_ranges() -> None:
    records = _Records()
    ids = iter(range(7, 100))
    ranges = VendorRanges(records, lambda name: records.log.append(f"start {name}") or next(ids),  # type: ignore[arg-type]
                          lambda range_id: records.log.append(f"end {range_id}"))
    outer = ranges.push("outer")
    ranges.pop(ranges.push("inner"))
    ranges.pop(outer)
    assert records.log == ["open outer", "start outer", "open inner", "start inner", "end 8", "close record:inner",
                           "end 7", "close record:outer"]


def test_vendor_failure_still_closes_the_record_function() -> None:
    records = _Records()

    def broken(name: str) -> int:
        raise RuntimeError("vendor ranges unavailable")

    ranges = VendorRanges(records, broken, lambda range_id: None)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="vendor ranges unavailable"):
        ranges.push("region")
    assert records.log == ["open region", "close record:region"]

    def broken_end(range_id: int) -> None:
        raise RuntimeError("end failed")

    records.log.clear()
    ranges = VendorRanges(records, lambda name: 1, broken_end)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="end failed"):
        ranges.pop(ranges.push("region"))
    assert records.log == ["open region", "close record:region"]


def test_range_markers_without_a_vendor_are_the_plain_annotation() -> None:
    push, pop = range_markers()
    assert isinstance(push.__self__, UserAnnotation) and pop.__self__ is push.__self__  # type: ignore[attr-defined]
    push, pop = range_markers(lambda name: 0, lambda range_id: None)
    assert isinstance(push.__self__, VendorRanges)  # type: ignore[attr-defined]


def test_callback_failure_goes_to_on_error_or_propagates() -> None:
    class Minimal(Trace):
        def start(self) -> None: ...
        def step(self) -> None: ...
        def stop(self) -> None: ...
        def push(self, name: str) -> Any: ...
        def pop(self, handle: Any) -> None: ...
        def collect(self) -> list[Path]:
            return []

    def failing(argument: Any) -> None:
        raise OSError(f"cannot write {argument}")

    trace = Minimal()
    callback = trace.callback("write trace", failing)
    with pytest.raises(OSError, match="cannot write x"):
        callback("x")
    seen: list[tuple[str, str]] = []
    trace.on_error = lambda action, exc: seen.append((action, str(exc)))
    callback("y")
    assert seen == [("write trace", "cannot write y")]
    assert Minimal().on_error is None, "on_error is per trace"
    assert trace.op_table(5) == [] and trace.markers() == (trace.push, trace.pop)


def test_each_session_gets_its_own_trace_and_the_backend_keeps_none(tmp_path: Path) -> None:
    opened: list[Trace] = []

    class Recording(CpuBackend):
        def open_trace(self, config: Any, options: Any, sink: Any) -> Trace:
            trace = super().open_trace(config, options, sink)
            opened.append(trace)
            return trace

    backend = Recording()
    npp.backends.register("recording", backend)
    assert npp.backends.get("recording") is backend  # loaded (and named) once, before any session
    before = dict(vars(backend))
    sessions = []
    for index in range(2):
        with npp.session(backend="recording", output_dir=tmp_path / str(index)) as s:
            with npp.profile_region(f"region-{index}"):
                pass
        sessions.append(s)
    assert len(opened) == 2 and opened[0] is not opened[1]
    assert all(isinstance(trace, TorchProfilerTrace) for trace in opened)
    assert vars(backend) == before, "no session state on the backend"
    for index, s in enumerate(sessions):
        (path,) = s.trace_paths
        assert path.parent == tmp_path / str(index)
        names = {event["name"] for event in user_annotations(load_trace(path))}
        assert f"region-{index}" in names and f"region-{1 - index}" not in names
