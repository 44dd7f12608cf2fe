"""torch_npu's string timestamps (about 1.7e15 us) keep their sub-microsecond digits through reading and analysis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from npuprofile.analysis import TraceFile, summarize
from npuprofile.analysis.events import _exact_us

BASE = 1_700_000_000_123_456  # whole microseconds, as torch_npu writes them in 2023-2025


def _x(name: str, pid: int, ts: str, dur: float, cat: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"ph": "X", "name": name, "pid": pid, "tid": 1, "ts": ts, "dur": dur}
    if cat:
        event["cat"] = cat
    return event


def _write(root: Path, events: list[dict[str, Any]]) -> Path:
    folder = root / "host_1_20250101120000000_ascend_pt" / "ASCEND_PROFILER_OUTPUT"
    folder.mkdir(parents=True)
    meta = [{"ph": "M", "name": "process_name", "pid": 10, "tid": 0, "args": {"name": "Python"}},
            {"ph": "M", "name": "process_name", "pid": 20, "tid": 0, "args": {"name": "Ascend Hardware"}}]
    path = folder / "trace_view.json"
    path.write_text(json.dumps(meta + events))
    return path


def test_string_timestamps_keep_their_fractions(tmp_path: Path) -> None:
    path = _write(tmp_path, [_x("a", 10, f"{BASE}.789", 1.0), _x("b", 10, f"{BASE}.123", 0.5),
                             _x("c", 10, f"{BASE + 2}", 0.5)])
    trace = TraceFile(path)
    ts = {e["name"]: e["ts"] for e in trace.events() if e.get("ph") == "X"}
    assert trace.ts_origin_us == BASE
    assert ts["a"] == pytest.approx(0.789, abs=1e-9)
    assert ts["b"] == pytest.approx(0.123, abs=1e-9)  # float("...456.123") is ...456.125: 2 ns off
    assert ts["c"] == 2.0
    assert ts["a"] - ts["b"] == pytest.approx(0.666, abs=1e-9)


def test_sub_microsecond_gaps_between_kernels_are_measured(tmp_path: Path) -> None:
    """Two kernels 0.1 us apart: idle 100 ns, busy 600 ns (parsed as floats, the starts fall on 0.25 us steps)."""
    events = [
        _x("ProfilerStep#1", 10, f"{BASE}.000", 10.0, "cpu_op"),
        _x("aten::mm", 10, f"{BASE}.050", 2.0, "cpu_op"),
        _x("MatMul_kernel", 20, f"{BASE}.100", 0.3),
        _x("Add_kernel", 20, f"{BASE}.500", 0.3),
    ]
    (entry,) = summarize(_write(tmp_path, events).parent).device_time
    assert (entry.span_ns, entry.busy_ns, entry.idle_ns) == (700, 600, 100)


def test_the_common_clock_keeps_the_origin(tmp_path: Path) -> None:
    """Steps of string-ts traces still land on the absolute clock (origin added back to the clock base)."""
    events = [_x("ProfilerStep#1", 10, f"{BASE}.250", 10.0, "cpu_op"),
              _x("ProfilerStep#2", 10, f"{BASE + 20}.750", 10.0, "cpu_op")]
    summary = summarize(_write(tmp_path, events))
    assert [s.start_ns for s in summary.steps] == [0, 20_500]


@pytest.mark.parametrize("text, origin, expected", [
    ("1700000000123456.789", 1700000000123456, 0.789),
    ("1700000000123457", 1700000000123456, 1.0),
    ("-3.25", 0, -3.25),
    ("-0.5", 0, -0.5),
    ("1.5e3", 0, 1500.0),  # not a plain decimal: parsed as a float
    ("  12.5 ", 10, 2.5),
])
def test_exact_parse(text: str, origin: int, expected: float) -> None:
    assert _exact_us(text, origin) == pytest.approx(expected, abs=1e-12)


def test_non_numeric_timestamps_are_refused(tmp_path: Path) -> None:
    from npuprofile.errors import TraceError

    path = _write(tmp_path, [_x("a", 10, f"{BASE}.5", 1.0), _x("b", 10, "soon", 1.0)])
    with pytest.raises(TraceError, match="non-numeric ts: 'soon'"):
        list(TraceFile(path).events())


def test_kernel_table_start_times_keep_their_fractions(tmp_path: Path) -> None:
    """kernel_details.csv writes the same absolute microseconds: read exactly, the 0.1 us gap is there."""
    (tmp_path / "kernel_details.csv").write_text(
        "Step Id,Stream ID,Name,Type,Accelerator Core,Start Time(us),Duration(us)\n"
        f"1,3,MatMul_1,MatMulV2,AI_CORE,{BASE}.100,0.3\n"
        f'1,3,Add_2,Add,AI_VECTOR_CORE,"{BASE}.500\t",0.3\n'
        "1,3,Broken,Add,AI_CORE,N/A,0.3\n")
    (entry,) = summarize(tmp_path).device_time
    assert (entry.span_ns, entry.busy_ns, entry.idle_ns) == (700, 600, 100)
