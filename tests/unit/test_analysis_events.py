"""The streaming trace reader: exact on real and adversarial files, bounded memory, clear errors."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npuprofile.analysis import TraceFile, find_traces, iter_events
from npuprofile.analysis import events as events_module
from npuprofile.errors import TraceError
from tests._trace_factory import shared_traces, write_ascend_layout


@pytest.fixture
def real_traces() -> dict[str, Path]:
    shared = shared_traces()
    return {"plain": shared["plain"], "gzip": shared["packed"], "torch": shared["torch"]}


def _load(path: Path) -> dict[str, Any]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as handle:
        return json.load(handle)


@pytest.mark.parametrize("kind", ["plain", "gzip", "torch"])
@pytest.mark.parametrize("chunk", [64, 4096, 4 << 20])
def test_real_trace_reads_exactly_like_json_load(real_traces: dict[str, Path], kind: str, chunk: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_module, "CHUNK_BYTES", chunk)
    path = real_traces[kind]
    expected = _load(path)
    trace = TraceFile(path)
    got = list(trace.events())
    assert got == expected["traceEvents"]
    assert trace.layout == "torch"
    assert trace.metadata == {k: v for k, v in expected.items() if k != "traceEvents"}
    assert trace.events_read == len(expected["traceEvents"])


def test_real_trace_has_shapes_stacks_and_memory(real_traces: dict[str, Path]) -> None:
    events = list(iter_events(real_traces["plain"]))
    assert any("Input Dims" in (e.get("args") or {}) for e in events)
    assert any(e.get("cat") == "python_function" for e in events)
    assert any(e.get("name") == "[memory]" for e in events)
    assert {e["name"] for e in events if str(e.get("name", "")).startswith("ProfilerStep#")}


def test_progress_reports_growing_bytes_up_to_file_size(real_traces: dict[str, Path],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_module, "CHUNK_BYTES", 16384)
    path = real_traces["plain"]
    seen: list[tuple[int, int]] = []
    for _ in iter_events(path, progress=lambda done, total: seen.append((done, total))):
        pass
    size = path.stat().st_size
    assert len(seen) > 3
    assert all(total == size for _, total in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert seen[-1][0] == size


# -- adversarial layouts (property) -------------------------------------------------------
_tricky_text = st.lists(st.sampled_from(list('ab{}[],:" \\\n\té') + ["},{", "}, {", "}]", '\\"', '"traceEvents"']),
                        max_size=8).map("".join)
_scalar = st.one_of(st.integers(-10**6, 10**6), st.floats(-1e6, 1e6, allow_nan=False), _tricky_text,
                    st.booleans(), st.none())
_args = st.recursive(_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(_tricky_text, inner, max_size=3)),
                     max_leaves=6)
_event = st.fixed_dictionaries(
    {"ph": st.sampled_from(["X", "i", "M"]), "name": _tricky_text, "ts": st.floats(0, 1e9, allow_nan=False),
     "pid": st.integers(0, 3), "tid": st.integers(0, 3)},
    optional={"dur": st.floats(0, 1e4, allow_nan=False), "args": st.dictionaries(_tricky_text, _args, max_size=3),
              "cat": _tricky_text},
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=st.lists(_event, max_size=25),
    head=st.dictionaries(st.sampled_from(["schemaVersion", "deviceProperties", "note", "x"]), _args, max_size=3),
    tail=st.dictionaries(st.sampled_from(["traceName", "displayTimeUnit", "y"]), _args, max_size=2),
    indent=st.sampled_from([None, 1, 4]),
    chunk=st.sampled_from([1, 7, 64, 1 << 20]),
    packed=st.booleans(),
)
def test_any_valid_torch_layout_streams_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                events: list[dict[str, Any]], head: dict[str, Any],
                                                tail: dict[str, Any], indent: int | None, chunk: int,
                                                packed: bool) -> None:
    monkeypatch.setattr(events_module, "CHUNK_BYTES", chunk)
    document = {**head, "traceEvents": events, **{k: v for k, v in tail.items() if k not in head}}
    text = json.dumps(document, indent=indent).encode()
    path = tmp_path / ("t.json.gz" if packed else "t.json")
    path.write_bytes(gzip.compress(text) if packed else text)
    trace = TraceFile(path)
    assert list(trace.events()) == json.loads(text)["traceEvents"]
    assert trace.metadata == {k: v for k, v in document.items() if k != "traceEvents"}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(_event, max_size=25), indent=st.sampled_from([None, 2]), chunk=st.sampled_from([1, 50, 1 << 20]))
def test_array_layout_normalises_string_timestamps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   events: list[dict[str, Any]], indent: int | None,
                                                   chunk: int) -> None:
    monkeypatch.setattr(events_module, "CHUNK_BYTES", chunk)
    written = [{**e, "ts": repr(e["ts"])} for e in events]
    path = tmp_path / "trace_view.json"
    path.write_text(json.dumps(written, indent=indent))
    trace = TraceFile(path)
    got = list(trace.events())
    # string ts come relative to the whole microseconds of the first one (kept on the trace)
    assert [e["ts"] + trace.ts_origin_us for e in got] == pytest.approx([float(e["ts"]) for e in events], abs=1e-6)
    assert all(isinstance(e["ts"], float) for e in got)
    assert [{k: v for k, v in e.items() if k != "ts"} for e in got] == \
        [{k: (float(v) if k == "dur" else v) for k, v in e.items() if k != "ts"} for e in events]


def test_ascend_layout_is_found_and_read(tmp_path: Path) -> None:
    path = write_ascend_layout(tmp_path)
    (tmp_path / "run.summary.json").write_text("{}")
    assert find_traces(tmp_path) == [path]
    trace = TraceFile(path)
    events = list(trace.events())
    assert trace.layout == "array"
    assert len(events) == len(json.loads(path.read_text()))
    assert all(isinstance(e["ts"], float) for e in events if "ts" in e)


def test_find_traces_lists_torch_traces_and_skips_others(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    wanted = [tmp_path / "a" / "w.1.pt.trace.json", tmp_path / "w.2.pt.trace.json.gz"]
    for path in wanted:
        path.write_bytes(b"{}")
    (tmp_path / "w.summary.json").write_text("{}")
    (tmp_path / ".w.3.pt.trace.json.123.tmp").write_text("{}")
    (tmp_path / ".hidden.pt.trace.json").write_text("{}")
    assert find_traces(tmp_path) == sorted(wanted)
    assert find_traces(wanted[0]) == [wanted[0]]


# -- malformed input ------------------------------------------------------------------------
def _error(path: Path) -> str:
    with pytest.raises(TraceError) as info:
        for _ in iter_events(path):
            pass
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    return message


def test_missing_file(tmp_path: Path) -> None:
    assert "no such file" in _error(tmp_path / "nope.json")


def test_missing_directory_and_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="no such file or directory"):
        find_traces(tmp_path / "nothing")
    with pytest.raises(TraceError, match="no trace files found"):
        find_traces(tmp_path)


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "empty file"),
        (b"   \n", "empty file"),
        (b"hello world", "not a trace"),
        (b'"just a string"', "not a trace"),
        (b'{"a": 1, "b": [1, 2]}', "JSON but not a trace"),
        (b'{"a": 1, "b": [1, 2', "not valid JSON"),
        (b'{"traceEvents": {"a": 1}}', "traceEvents is not an array"),
        (b"[1, 2, 3]", "events must be objects"),
        (b'{"traceEvents": [{"ph": "X", "ts": 1}, {"ph": "X", "ts":', "truncated JSON"),
        (b'[{"ph": "X", "ts": "soon"}]', "non-numeric ts"),
    ],
)
def test_malformed_content(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    assert expected in _error(path)


def test_truncated_gzip(real_traces: dict[str, Path], tmp_path: Path) -> None:
    data = real_traces["gzip"].read_bytes()
    path = tmp_path / "cut.pt.trace.json.gz"
    path.write_bytes(data[: len(data) // 2])
    assert "truncated gzip" in _error(path)


def test_corrupt_gzip(real_traces: dict[str, Path], tmp_path: Path) -> None:
    data = bytearray(real_traces["gzip"].read_bytes())
    data[30:60] = b"\x00" * 30
    path = tmp_path / "bad.pt.trace.json.gz"
    path.write_bytes(bytes(data))
    assert "gzip" in _error(path)


def test_gzip_named_plain_and_plain_named_gzip_both_read(real_traces: dict[str, Path], tmp_path: Path) -> None:
    plain = tmp_path / "x.pt.trace.json.gz"
    shutil.copy(real_traces["plain"], plain)
    assert list(iter_events(plain)) == list(iter_events(real_traces["plain"]))


# -- limits and whitespace ---------------------------------------------------------------------
_gap = st.sampled_from(["", " ", "\n", " \t\r\n" * 40, " " * 200])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(_event, min_size=1, max_size=12), gaps=st.lists(st.tuples(_gap, _gap), min_size=12,
                                                                      max_size=12),
       chunk=st.sampled_from([1, 16, 64, 300]), packed=st.booleans())
def test_whitespace_of_any_length_between_events_reads_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              events: list[dict[str, Any]],
                                                              gaps: list[tuple[str, str]], chunk: int,
                                                              packed: bool) -> None:
    monkeypatch.setattr(events_module, "CHUNK_BYTES", chunk)
    items = [before + json.dumps(event) + after for event, (before, after) in zip(events, gaps)]
    text = ('{"traceEvents": [' + ",".join(items) + "]" + gaps[0][1] + "}").encode()
    path = tmp_path / ("t.json.gz" if packed else "t.json")
    path.write_bytes(gzip.compress(text) if packed else text)
    assert list(iter_events(path)) == json.loads(text)["traceEvents"]


def _limited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_module, "CHUNK_BYTES", 64)
    monkeypatch.setattr(events_module, "MAX_ITEM_BYTES", 1024)
    monkeypatch.setattr(events_module, "MAX_HEAD_BYTES", 2048)


def _limit_error(path: Path) -> str:
    with pytest.raises(events_module.TraceLimitError) as info:
        for _ in iter_events(path):
            pass
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "limit:" in message
    return message


@pytest.mark.parametrize("size, fits", [(900, True), (5000, False)])
def test_an_event_over_the_size_limit_ends_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       size: int, fits: bool) -> None:
    _limited(monkeypatch)
    event = {"ph": "X", "name": "n" * size, "ts": 1.0, "dur": 1.0}
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"traceEvents": [event] * 3}) + " " * 100_000)
    if fits:
        assert [e["name"] for e in iter_events(path)] == ["n" * size] * 3
    else:
        assert "per event" in _limit_error(path)


@pytest.mark.parametrize("where", ["head", "tail"])
def test_top_level_keys_over_the_limit_end_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       where: str) -> None:
    _limited(monkeypatch)
    document = {"traceEvents": [{"ph": "X", "ts": 1, "dur": 1}]}
    document = {"note": "x" * 4096, **document} if where == "head" else {**document, "traceName": "x" * 4096}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(document))
    assert ("before the events" if where == "head" else "after the events") in _limit_error(path)


def test_json_nested_past_the_parsers_depth_ends_in_one_line(tmp_path: Path) -> None:
    deep = '{"ph": "X", "ts": 1, "dur": 1, "args": ' + "[" * 5000 + "]" * 5000 + "}"
    path = tmp_path / "t.json"
    path.write_text('{"traceEvents": [' + deep + "]}")
    assert f"limit: {events_module.MAX_DEPTH} levels" in _error(path)


def test_running_out_of_memory_while_parsing_ends_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"traceEvents": [{"ph": "X", "ts": 1, "dur": 1}]}))

    def exhausted(_data: Any) -> Any:
        raise MemoryError

    monkeypatch.setattr(events_module.orjson, "loads", exhausted)
    assert "out of memory" in _limit_error(path)
