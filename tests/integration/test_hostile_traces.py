"""Hostile and broken trace files for ``summarize``, ``report``, ``merge`` and ``compare``.

Memory stays bounded whatever the input, a limit ends in one line naming the
file and the limit (exit 2), fields of the wrong type are skipped and counted,
and a directory of many sessions reads each session summary once. The size
cases run the command line in a fresh process that reports its own peak RSS;
the type cases call the command line in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import pytest

from npuprofile.analysis import runinfo
from npuprofile.analysis.summarize import summarize
from npuprofile.cli.main import main
from tests import _hostile

ROOT = Path(__file__).resolve().parents[2]
RSS_LIMIT_MB = 300


# The command line in a child that writes its own peak RSS (VmHWM: the high-water mark of the memory map
# made at exec) on the way out. The rusage of a child also counts the memory of this (large) test process
# it was forked from, so it cannot tell.
_CHILD = """
import atexit, sys
def report():
    with open('/proc/self/status') as status, open(sys.argv[1], 'w') as out:
        out.write(next(line for line in status if line.startswith('VmHWM:')).split()[1])
atexit.register(report)
from npuprofile.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def run_cli(*args: str) -> tuple[int, float, str, str]:
    """Exit status, peak RSS in MB, stdout and stderr of the ``npuprofile`` command line in a fresh process."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    with tempfile.TemporaryDirectory() as scratch:
        peak = Path(scratch) / "peak"
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(peak), *args], env=env, capture_output=True)
        rss = int(peak.read_text()) / 1024 if peak.exists() else float("inf")
    return proc.returncode, rss, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")


SIZE_CASES: dict[str, tuple[Callable[[Path], Path], str, int, str]] = {
    # name: (writer, suffix, exit status, words the one error line must hold)
    "gzip-string-bomb": (lambda p: _hostile.gzip_string_bomb(p, 64), ".pt.trace.json.gz", 2, "limit: 4 MB"),
    "huge-key": (lambda p: _hostile.huge_key(p, 32), ".pt.trace.json", 2, "limit: 4 MB"),
    "identical-timestamps": (lambda p: _hostile.identical_timestamps(p, 7), ".pt.trace.json", 2,
                             "limit: 50000 open events"),
    "sparse-2GB-after-header": (lambda p: _hostile.sparse_after_header(p, 2048), ".pt.trace.json", 2,
                                "limit: 4 MB"),
    "deep-nesting": (lambda p: _hostile.deep_nesting(p, 100_000), ".pt.trace.json", 2, "limit: 1024 levels"),
    "huge-head": (lambda p: _hostile.huge_head(p, 32), ".pt.trace.json", 2, "limit: 16 MB"),
    "huge-tail": (lambda p: _hostile.huge_tail(p, 32), ".pt.trace.json", 2, "limit: 16 MB"),
    "one-lane-per-event": (lambda p: _hostile.one_lane_per_event(p, 3), ".pt.trace.json", 2, "limit: 10000 lanes"),
    "whitespace-flood": (lambda p: _hostile.whitespace_between_events(p, 64), ".pt.trace.json", 0, ""),
    "whitespace-flood-gzip": (lambda p: _hostile.whitespace_between_events(p, 256, packed=True),
                              ".pt.trace.json.gz", 0, ""),
    "many-small-objects": (lambda p: _hostile.many_small_values(p, 3), ".pt.trace.json", 0, ""),
}


@pytest.mark.parametrize("name", list(SIZE_CASES))
def test_memory_stays_bounded_and_a_limit_ends_in_one_line(tmp_path: Path, name: str) -> None:
    write, suffix, expected, words = SIZE_CASES[name]
    path = write(tmp_path / f"{name}{suffix}")
    code, rss, out, err = run_cli("summarize", "--json", "-q", str(path))
    assert rss < RSS_LIMIT_MB, f"{name}: peak RSS {rss:.0f} MB"
    assert code == expected, err[-2000:]
    assert "Traceback" not in err
    if expected == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0] and words in lines[0], lines
    else:
        assert err == ""
        events = json.loads(out)["sources"][0]["events"]
        assert events >= 2, events


@pytest.mark.parametrize("command", ["report", "merge", "compare"])
def test_every_command_ends_a_limit_in_one_line(tmp_path: Path, command: str) -> None:
    path = _hostile.identical_timestamps(tmp_path / "run.rank0.host_1.5.pt.trace.json", 7)
    if command == "merge":  # merge keeps no nesting stack: its limit is the size of one event
        path = _hostile.huge_key(path, 8)
    out = tmp_path / "out"
    args = {"report": ["report", str(path), "-o", f"{out}.html", "-q"],
            "merge": ["merge", str(path), "-o", f"{out}.json", "-q"],
            "compare": ["compare", str(path), str(path)]}[command]
    code, rss, _, err = run_cli(*args)
    lines = err.strip().splitlines()
    assert (code, len(lines)) == (2, 1), err[-2000:]
    assert str(path) in lines[0] and "limit:" in lines[0]
    assert rss < RSS_LIMIT_MB


def _event(i: int, **fields: Any) -> dict[str, Any]:
    return {"ph": "X", "name": "aten::mm", "cat": "cpu_op", "ts": 100.0 + 10 * i, "dur": 5.0, "pid": 1, "tid": 1,
            "args": {}, **fields}


BAD_EVENTS: dict[str, dict[str, Any]] = {
    "ts-string-after-the-first": {"ts": "oops"},
    "ts-numeric-string-after-the-first": {"ts": "120.0"},
    "dur-string-after-the-first": {"dur": "long"},
    "ts-list": {"ts": [1, 2]},
    "ts-too-large": {"ts": 1e300},
    "dur-too-large": {"dur": 1e300},
    "dur-null": {"dur": None},
    "pid-list": {"pid": [1]},
    "tid-object": {"tid": {"a": 1}},
    "ph-list": {"ph": ["X"]},
    "cat-list": {"cat": ["x"]},
    "name-list": {"name": ["x"]},
}
#: Fields of an odd type that can still be used: counted as they are, nothing skipped.
ODD_EVENTS: dict[str, dict[str, Any]] = {
    "name-int": {"name": 5},
    "args-string": {"args": "oops"},
    "args-list": {"args": [1, 2]},
    "id-huge": {"id": 2**64 - 1},
}


def _cli_args(command: str, trace: Path, tmp_path: Path) -> list[str]:
    output = tmp_path / ("out.html" if command == "report" else "out.json")
    return {"summarize": ["summarize", "--json", str(trace)], "report": ["report", str(trace), "-o", str(output)],
            "merge": ["merge", str(trace), "-o", str(output)], "compare": ["compare", str(trace), str(trace)]}[command]


def _through_command(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str,
                     third_event: dict[str, Any]) -> Any:
    """Four events, the third with ``third_event``'s fields: ``command`` must exit 0 silently; the trace's summary."""
    events = [_event(0), _event(1), _event(2, **third_event), _event(3)]
    trace = tmp_path / "run.rank0.host_1.5.pt.trace.json"
    trace.write_text(json.dumps({"traceEvents": events}))
    args = _cli_args(command, trace, tmp_path)
    assert main([*args, "-q"] if command != "compare" else args) == 0
    assert capsys.readouterr().err == ""
    return summarize(trace)


@pytest.mark.parametrize("command", ["summarize", "report", "merge", "compare"])
@pytest.mark.parametrize("case", list(BAD_EVENTS))
def test_an_event_of_the_wrong_type_is_skipped_and_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           case: str, command: str) -> None:
    result = _through_command(tmp_path, capsys, command, BAD_EVENTS[case])
    assert result.metadata.get("malformed_events") == 1
    assert {o.name: o.count for o in result.ops} == {"aten::mm": 3}


@pytest.mark.parametrize("command", ["summarize", "report", "merge", "compare"])
@pytest.mark.parametrize("case", list(ODD_EVENTS))
def test_an_event_of_an_odd_but_usable_type_is_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       case: str, command: str) -> None:
    result = _through_command(tmp_path, capsys, command, ODD_EVENTS[case])
    assert "malformed_events" not in result.metadata
    assert sum(o.count for o in result.ops) == 4


def test_string_timestamps_of_the_array_layout_that_are_not_numbers_end_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "trace_view.json"
    trace.write_text(json.dumps([dict(_event(0), ts="100.0"), dict(_event(1), ts="soon")]))
    assert main(["summarize", str(trace), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(trace) in err[0] and "'soon'" in err[0]


BAD_SUMMARIES: dict[str, str] = {
    "started-at-nan": '{"metadata": {"rank": 0, "started_at": NaN}, "regions": []}',
    "started-at-1e300": '{"metadata": {"rank": 0, "started_at": 1e300}, "regions": []}',
    "degraded-int": '{"metadata": {"rank": 0, "degraded": 5}, "regions": []}',
    "rank-string": '{"metadata": {"rank": "zero"}, "regions": []}',
    "rank-huge": '{"metadata": {"rank": 100000000000000000000000}, "regions": []}',
    "metadata-list": '{"metadata": [1, 2], "regions": []}',
    "regions-string": '{"metadata": {"rank": 0}, "regions": "abc"}',
    "trace-paths-nul": '{"metadata": {"rank": 0, "trace_paths": ["a\\u0000b", 5]}, "regions": []}',
    "deeply-nested": '{"metadata": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "not-json": "{not json",
}


@pytest.mark.parametrize("command", ["summarize", "report", "merge", "compare"])
@pytest.mark.parametrize("case", list(BAD_SUMMARIES))
def test_a_broken_session_summary_never_stops_the_analysis(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                           case: str, command: str) -> None:
    trace = tmp_path / "run.rank0.host_1.5.pt.trace.json"
    trace.write_text(json.dumps({"traceEvents": [_event(0), _event(1)], "baseTimeNanoseconds": 1e308}))
    (tmp_path / "run.rank0.host_1.summary.json").write_text(BAD_SUMMARIES[case])
    args = _cli_args(command, tmp_path if command != "merge" else trace, tmp_path)
    assert main([*args, "-q"] if command != "compare" else args) == 0
    if command != "merge":  # the summary is read (by compare once per side), found wanting, told in one line
        warnings = [r.getMessage() for r in caplog.records if "session summary" in r.getMessage()]
        assert len(warnings) == (2 if command == "compare" else 1), warnings
        assert all("\n" not in w and "summary.json" in w for w in warnings), warnings
    meta = summarize(trace).metadata
    for key in ("started_at", "stopped_at"):
        assert key not in meta or (isinstance(meta[key], (int, float)) and 0 <= meta[key] < 1e11)
    assert "rank" not in meta or (isinstance(meta["rank"], int) and 0 <= meta["rank"] < 2**63)
    assert isinstance(meta.get("degraded", []), list)


BAD_SAVED_SUMMARIES: dict[str, str] = {
    "not-json": "{not json",
    "a-list": "[1, 2]",
    "deeply-nested": "[" * 100_000 + "]" * 100_000,
    "regions-string": '{"schema_version": 2, "kind": "trace", "regions": "abc"}',
    "region-count-string": '{"schema_version": 2, "kind": "trace", "regions": [{"name": "r", "count": "x"}]}',
    "steps-nan": '{"schema_version": 2, "kind": "trace", "steps": [{"step": 1, "duration_ns": NaN}]}',
}


@pytest.mark.parametrize("command", ["summarize", "compare"])
@pytest.mark.parametrize("case", list(BAD_SAVED_SUMMARIES))
def test_a_broken_saved_summary_given_to_a_command_ends_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, command: str) -> None:
    saved = tmp_path / "run.summary.json"
    saved.write_text(BAD_SAVED_SUMMARIES[case])
    args = ["summarize", str(saved)] if command == "summarize" else ["compare", str(saved), str(saved)]
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code in (0, 2)
    if code == 2:
        assert len(err) == 1 and str(saved) in err[0], err


@pytest.mark.parametrize("ident", [2**64 - 1, 2**63 - 1, -(2**63), 7])
def test_flow_ids_of_any_size_merge_into_ids_that_stay_apart(tmp_path: Path, ident: int) -> None:
    for rank in (0, 1):
        flow = {"ph": "s", "name": "flow", "cat": "ac2g", "id": ident, "ts": 100.0, "pid": 1, "tid": 1}
        (tmp_path / f"run.rank{rank}.host_1.5.pt.trace.json").write_text(
            json.dumps({"traceEvents": [_event(0), flow]}))
    assert main(["merge", str(tmp_path), "-o", str(tmp_path / "merged.json"), "-q"]) == 0
    ids = [e["id"] for e in json.loads((tmp_path / "merged.json").read_text())["traceEvents"] if e.get("ph") == "s"]
    assert len(ids) == 2 and ids[0] != ids[1]
    assert all(isinstance(i, str) or abs(i) < 2**63 for i in ids)


def test_process_names_of_the_wrong_type_merge(tmp_path: Path) -> None:
    meta = {"ph": "M", "name": "process_name", "pid": 7, "tid": 0, "args": "oops"}
    (tmp_path / "run.rank0.host_1.5.pt.trace.json").write_text(
        json.dumps({"traceEvents": [_event(0), meta, dict(_event(1), pid=7)]}))
    assert main(["merge", str(tmp_path), "-o", str(tmp_path / "merged.json"), "-q"]) == 0
    names = [e["args"]["name"] for e in json.loads((tmp_path / "merged.json").read_text())["traceEvents"]
             if e.get("name") == "process_name"]
    assert "rank 0: pid 7" in names


def test_a_hostile_clock_base_is_dropped_before_merging(tmp_path: Path) -> None:
    for rank, base in ((0, 1e308), (1, 5)):
        (tmp_path / f"run.rank{rank}.host_1.5.pt.trace.json").write_text(
            json.dumps({"traceEvents": [_event(0)], "baseTimeNanoseconds": base}))
    assert main(["merge", str(tmp_path), "-o", str(tmp_path / "merged.json"), "-q"]) == 0
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert merged["baseTimeNanoseconds"] == 0  # the unusable base is taken as absent (0), never 1e308
    assert len(merged["traceEvents"]) >= 2


def write_sessions(directory: Path, count: int) -> list[Path]:
    """``count`` sessions as npuprofile writes them: a trace and a summary listing it."""
    traces = []
    for index in range(count):
        stem = f"run{index:04d}.rank0.host_{100 + index}"
        trace = directory / f"{stem}.{10**18 + index}.pt.trace.json"
        trace.write_text(json.dumps({"traceEvents": [_event(0), _event(1, cat="user_annotation", name="r")]}))
        summary = {"metadata": {"rank": 0, "run_id": f"run{index:04d}", "trace_paths": [str(trace)]},
                   "regions": [{"name": "r", "count": 1}]}
        (directory / f"{stem}.summary.json").write_text(json.dumps(summary))
        traces.append(trace)
    return traces


@pytest.mark.parametrize("count", [1, 7, 60])
def test_each_session_summary_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    traces = write_sessions(tmp_path, count)
    reads: list[Path] = []
    original = runinfo.load_session_summary

    def counting(path: Path) -> dict[str, Any] | None:
        reads.append(path)
        return original(path)

    monkeypatch.setattr(runinfo, "load_session_summary", counting)
    result = summarize(tmp_path)
    assert len(reads) == count and len(set(reads)) == count  # N sessions: N reads, not N x N
    by_trace = {Path(s.path).name: Path(s.session_summary).name for s in result.sources if s.session_summary}
    assert by_trace == {t.name: t.name.rsplit(".", 4)[0] + ".summary.json" for t in traces}


def test_a_summary_found_by_its_stem_when_it_lists_no_traces(tmp_path: Path) -> None:
    trace = tmp_path / "job.rank3.host_9.123.pt.trace.json"
    trace.write_text(json.dumps({"traceEvents": [_event(0)]}))
    (tmp_path / "job.rank3.host_9.summary.json").write_text('{"metadata": {"rank": 3}}')
    (tmp_path / "other.rank0.host_1.summary.json").write_text('{"metadata": {"rank": 0, "trace_paths": []}}')
    index = runinfo.SummaryIndex()
    assert index.find(trace) == tmp_path / "job.rank3.host_9.summary.json"
    assert summarize(trace).sources[0].rank == 3
