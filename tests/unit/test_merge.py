"""``analysis.merge`` on small hand-made traces: lanes, clocks, ids, runs, streaming."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npuprofile.analysis.merge import identify, merge_traces
from npuprofile.cli.main import main as cli_main
from npuprofile.errors import TraceError
from tests.conftest import load_trace


def write_trace(directory: Path, run: str, rank: int, events: list[dict[str, Any]], *, pid: int = 100,
                base: int | None = 1_000_000_000, gz: bool = False, extra: dict[str, Any] | None = None) -> Path:
    body: dict[str, Any] = {"schemaVersion": 1, "distributedInfo": {"rank": rank}}
    if base is not None:
        body["baseTimeNanoseconds"] = base
    body["traceEvents"] = events
    body.update(extra or {})
    name = f"{run}.rank{rank}.host_{pid}.123.pt.trace.json" + (".gz" if gz else "")
    path = directory / name
    data = json.dumps(body).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def op(name: str, ts: float, pid: int = 100, tid: int = 1, dur: float = 5.0, **more: Any) -> dict[str, Any]:
    return {"ph": "X", "name": name, "pid": pid, "tid": tid, "ts": ts, "dur": dur, **more}


def test_lanes_are_ranks_and_pseudo_processes_fold_in(tmp_path: Path) -> None:
    events = [
        {"ph": "M", "name": "process_name", "pid": 100, "tid": 0, "args": {"name": "python"}},
        op("a", 10.0),
        op("span", 5.0, pid="Spans", tid="PyTorch Profiler"),  # type: ignore[arg-type]
        {"ph": "M", "name": "process_sort_index", "pid": "Spans", "tid": 0, "args": {"sort_index": 9}},
        {"ph": "M", "name": "process_name", "pid": 7, "tid": 0, "args": {"name": "GPU 0"}},
        op("kernel", 12.0, pid=7, tid=3),
    ]
    paths = [write_trace(tmp_path, "run1", r, events) for r in (0, 1)]
    result = merge_traces(paths, tmp_path / "out.json")
    merged = load_trace(result.output)["traceEvents"]
    names = {e["pid"]: e["args"]["name"] for e in merged if e["ph"] == "M" and e["name"] == "process_name"}
    assert names[0] == "rank 0" and names[1] == "rank 1"
    device_lanes = {pid: name for pid, name in names.items() if pid not in (0, 1)}
    assert sorted(device_lanes.values()) == ["rank 0: GPU 0", "rank 1: GPU 0"]
    assert {e["pid"] for e in merged if e["name"] in ("a", "span")} == {0, 1}
    assert result.events_in == 12
    sort = {e["pid"]: e["args"]["sort_index"] for e in merged if e["ph"] == "M" and e["name"] == "process_sort_index"}
    assert sort[0] < min(sort[p] for p in device_lanes if names[p].startswith("rank 0")) < sort[1]


def test_clock_alignment_uses_each_files_base(tmp_path: Path) -> None:
    a = write_trace(tmp_path, "r", 0, [op("x", 100.0)], base=5_000_000)
    b = write_trace(tmp_path, "r", 1, [op("x", 100.0)], base=2_000_000)
    result = merge_traces([a, b], tmp_path / "out.json")
    merged = load_trace(result.output)
    assert merged["baseTimeNanoseconds"] == 2_000_000
    ts = {e["pid"]: e["ts"] for e in merged["traceEvents"] if e["name"] == "x"}
    assert ts == {0: 100.0 + 3000.0, 1: 100.0}  # 3 ms later base on rank 0
    kept = merge_traces([a, b], tmp_path / "kept.json", align="none")
    assert {e["ts"] for e in load_trace(kept.output)["traceEvents"] if e["name"] == "x"} == {100.0}
    with pytest.raises(TraceError, match="align='wall'"):
        merge_traces([a, b], tmp_path / "bad.json", align="wall")


def test_flow_ids_stay_apart_between_ranks(tmp_path: Path) -> None:
    flow = [{"ph": "s", "id": 5, "name": "f", "pid": 100, "tid": 1, "ts": 1.0, "cat": "ac2g"},
            {"ph": "f", "id": 5, "name": "f", "pid": 100, "tid": 1, "ts": 2.0, "cat": "ac2g", "bp": "e"},
            {"ph": "b", "id": "0x1", "name": "async", "pid": 100, "tid": 1, "ts": 1.0, "cat": "c"}]
    paths = [write_trace(tmp_path, "r", rank, flow) for rank in (0, 1)]
    merged = load_trace(merge_traces(paths, tmp_path / "o.json").output)["traceEvents"]
    ids = {(e["pid"], e["ph"]): e["id"] for e in merged if "id" in e}
    assert ids[(0, "s")] == ids[(0, "f")] != ids[(1, "s")] == ids[(1, "f")]
    assert ids[(0, "b")] != ids[(1, "b")]


def test_runs_are_not_mixed_unless_asked(tmp_path: Path) -> None:
    a = write_trace(tmp_path, "runA", 0, [op("x", 1.0)])
    b = write_trace(tmp_path, "runB", 0, [op("y", 1.0)])
    with pytest.raises(TraceError, match="2 runs: runA .1 files., runB .1 files.*--allow-mixed-runs"):
        merge_traces([a, b], tmp_path / "o.json")
    assert not (tmp_path / "o.json").exists()
    only_b = merge_traces([a, b], tmp_path / "b.json", run_id="runB")
    assert [e["name"] for e in load_trace(only_b.output)["traceEvents"] if e["ph"] == "X"] == ["y"]
    both = merge_traces([a, b], tmp_path / "ab.json", allow_mixed_runs=True)
    lanes = {e["args"]["name"] for e in load_trace(both.output)["traceEvents"] if e.get("name") == "process_name"}
    assert lanes == {"runA rank 0", "runB rank 0"}
    assert cli_main(["merge", str(tmp_path), "-o", str(tmp_path / "cli.json"), "-q"]) == 2


def test_rank_from_distributed_info_when_the_name_does_not_say(tmp_path: Path) -> None:
    path = tmp_path / "worker.pt.trace.json"
    path.write_text(json.dumps({"distributedInfo": {"rank": 3}, "traceEvents": [op("x", 1.0)]}))
    assert identify(path).rank == 3
    anonymous = tmp_path / "anon.pt.trace.json"
    anonymous.write_text(json.dumps({"traceEvents": [op("x", 1.0)]}))
    with pytest.raises(TraceError, match="cannot tell which rank"):
        identify(anonymous)


def test_a_rank_twice_or_two_world_sizes_are_not_one_run(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    first = write_trace(tmp_path / "a", "run", 0, [op("x", 1.0)], pid=100)
    again = write_trace(tmp_path / "b", "run", 0, [op("y", 1.0, pid=200)], pid=200)
    with pytest.raises(TraceError, match=r"rank 0 appears in 2 traces .*a/.*b/.*different processes.*"
                                         "--allow-mixed-runs"):
        merge_traces([first, again], tmp_path / "o.json")
    # one process's consecutive traces (a schedule's cycles) are one rank's, on one lane
    cycle = write_trace(tmp_path / "b", "run", 0, [op("z", 9.0)], pid=100)
    cycles = merge_traces([first, cycle], tmp_path / "cycles.json")
    assert {e["pid"] for e in load_trace(cycles.output)["traceEvents"] if e["ph"] == "X"} == {0}
    (tmp_path / "c").mkdir()
    copy = tmp_path / "c" / first.name
    copy.write_bytes(first.read_bytes())
    with pytest.raises(TraceError, match=r"rank 0 appears in 2 traces .*copies of one trace"):
        merge_traces([first, copy], tmp_path / "o.json")
    both = merge_traces([first, again], tmp_path / "both.json", allow_mixed_runs=True)
    names = sorted(e["args"]["name"] for e in load_trace(both.output)["traceEvents"] if e.get("name") == "process_name")
    assert names == ["rank 0", "rank 0 (copy 2)"]
    pids = {e["name"]: e["pid"] for e in load_trace(both.output)["traceEvents"] if e["ph"] == "X"}
    assert pids["x"] != pids["y"]
    small = write_trace(tmp_path, "run", 1, [op("z", 1.0)], extra={"distributedInfo": {"rank": 1, "world_size": 2}})
    large = write_trace(tmp_path, "run", 2, [op("z", 1.0)], extra={"distributedInfo": {"rank": 2, "world_size": 8}})
    with pytest.raises(TraceError, match="different sizes .world_size 2, 8."):
        merge_traces([small, large], tmp_path / "o.json")


def test_traces_in_subdirectories_ranks_from_rank_files_and_lfs_pointers(tmp_path: Path) -> None:
    events = [{"ph": "M", "name": "process_name", "pid": 7, "tid": 0, "args": {"name": "Python"}},
              {"ph": "X", "name": "aten::mm", "pid": 7, "tid": 7, "ts": "1700000000000100.5", "dur": 2.0}]
    for rank in (0, 1):
        worker = tmp_path / "job" / f"node{rank}_123_20250101_ascend_pt"
        (worker / "ASCEND_PROFILER_OUTPUT").mkdir(parents=True)
        (worker / "ASCEND_PROFILER_OUTPUT" / "trace_view.json").write_text(json.dumps(events))
        (worker / f"profiler_info_{rank}.json").write_text(json.dumps({"rank_id": rank}))
    out = tmp_path / "merged.json"
    assert cli_main(["merge", str(tmp_path / "job"), "-o", str(out), "-q"]) == 0
    lanes = load_trace(out)["npuprofileMerge"]["lanes"]
    assert [lane["rank"] for lane in lanes] == [0, 1]
    pointer = tmp_path / "job" / "rank9.pt.trace.json.gz"
    pointer.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 12\n")
    with pytest.raises(TraceError, match="Git LFS pointer"):
        identify(pointer)


def test_clock_base_stored_after_the_events_is_found(tmp_path: Path) -> None:
    path = tmp_path / "r.rank0.h_1.pt.trace.json"
    path.write_text('{"traceEvents": [' + json.dumps(op("x", 1.0, pid=1)) + '], "baseTimeNanoseconds": 777}')
    assert identify(path).base_ns == 777


def test_gzip_in_and_out(tmp_path: Path) -> None:
    paths = [write_trace(tmp_path, "r", rank, [op("x", float(rank))], gz=True) for rank in range(3)]
    result = merge_traces(paths, tmp_path / "o.json.gz")
    assert result.output.read_bytes()[:2] == b"\x1f\x8b"
    assert sorted(e["pid"] for e in load_trace(result.output)["traceEvents"] if e["ph"] == "X") == [0, 1, 2]


def test_progress_reports_every_byte(tmp_path: Path) -> None:
    paths = [write_trace(tmp_path, "r", rank, [op("x", float(i)) for i in range(50)]) for rank in range(2)]
    seen: list[tuple[int, int]] = []
    merge_traces(paths, tmp_path / "o.json", progress=lambda done, total: seen.append((done, total)))
    total = sum(p.stat().st_size for p in paths)
    assert seen and seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 10**6), st.integers(0, 3)),
                         max_size=20), min_size=1, max_size=4),
       st.lists(st.integers(0, 10**9), min_size=4, max_size=4))
def test_every_event_lands_on_its_rank_shifted_by_its_base(tmp_path_factory: pytest.TempPathFactory,
                                                           ranks: list[list[tuple[str, int, int]]],
                                                           bases: list[int]) -> None:
    directory = tmp_path_factory.mktemp("prop")
    paths = [write_trace(directory, "r", rank, [op(n, float(ts), tid=t) for n, ts, t in events], base=bases[rank])
             for rank, events in enumerate(ranks)]
    merged = load_trace(merge_traces(paths, directory / "m.json").output)
    reference = merged["baseTimeNanoseconds"]
    assert reference == min(bases[: len(ranks)])
    for rank, events in enumerate(ranks):
        got = sorted((e["name"], e["ts"], e["tid"]) for e in merged["traceEvents"]
                     if e["ph"] == "X" and e["pid"] == rank)
        shift = (bases[rank] - reference) / 1000.0
        assert got == sorted((n, ts + shift, t) for n, ts, t in events)
