"""Trace analysis on real traces recorded by others (V100/A100/MI250 GPUs, an Ascend NPU).

The traces are not committed (see ``tests/real_traces.py`` for where they are
looked for); what is committed are figures derived from them independently:
``ground_truth.json`` (exact self times by a full sort and a stack, event
counts) and ``hta_expected.json`` (HolisticTraceAnalysis 0.5.0's figures).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from npuprofile.analysis import summarize
from npuprofile.analysis.aggregate import Aggregator
from npuprofile.analysis.events import TraceFile
from npuprofile.analysis.merge import merge_traces
from npuprofile.analysis.summarize import TraceSummary
from npuprofile.errors import TraceError
from tests._trace_factory import hta_view
from tests.conftest import load_trace
from tests.real_traces import DATA, real_traces_or_skip

GROUND_TRUTH = json.loads((DATA / "ground_truth.json").read_text())["traces"]
HTA = json.loads((DATA / "hta_expected.json").read_text())["trace_sets"]
SELF_TIMED = [name for name, entry in GROUND_TRUTH.items() if "self_time_all_x" in entry]
HTA_KINDS = {"COMPUTATION": "compute", "COMMUNICATION": "communication", "MEMORY": "memory"}
ASCEND = "ascend/msprof_analyze_timeline"

_CACHE: dict[tuple[str, ...], TraceSummary] = {}


def _summary(*parts: str, **options: Any) -> TraceSummary:
    """``summarize`` of a real trace (file or folder), all ops kept; cached per test process."""
    key = (*parts, *(f"{k}={v}" for k, v in sorted(options.items())))
    if key not in _CACHE:
        _CACHE[key] = summarize(real_traces_or_skip("/".join(parts)), top=0, **options)
    return _CACHE[key]


# -- 1. CPU-op self times: exact nesting whatever the file order -------------------------------------
@pytest.mark.parametrize("trace", SELF_TIMED)
def test_cpu_self_times_match_exact_nesting(trace: str) -> None:
    truth = GROUND_TRUTH[trace]["self_time_all_x"]
    ours = {o.name: o for o in _summary(trace).cpu_ops}
    rows = truth["top5_by_self"] + [row for row in truth["focus"].values() if row]
    for row in rows:
        op = ours[row["name"]]
        assert op.self_ns / 1000 == pytest.approx(row["self_us"], abs=0.002), row["name"]
        # an op whose only child has its name is counted once (as torch's op table does)
        assert op.count <= row["count"], row["name"]
        if op.count == row["count"]:
            assert op.total_ns / 1000 == pytest.approx(row["total_dur_us"], abs=0.002), row["name"]


def test_the_file_order_does_not_change_self_times(tmp_path: Path) -> None:
    source = real_traces_or_skip("cuda/hta_a100_nccl_2rank_r0/nccl_data.json.gz")
    doc = load_trace(source)
    doc["traceEvents"].reverse()
    reversed_path = tmp_path / "reversed.json"
    reversed_path.write_text(json.dumps(doc))
    in_order = Aggregator().feed_all(TraceFile(source).events()).finish()
    backwards = Aggregator(budget=5000).feed_all(TraceFile(reversed_path).events()).finish()
    assert backwards.sorter.spills > 0  # the reversed lanes were sorted through the disk
    assert backwards.cpu_ops == in_order.cpu_ops
    assert backwards.regions == in_order.regions and backwards.steps == in_order.steps
    assert backwards.device_time == in_order.device_time


# -- 2 and 4. steps and device activities: counted as the inventory says -------------------------------
@pytest.mark.parametrize("trace", list(GROUND_TRUTH))
def test_every_device_activity_and_only_host_steps_are_counted(trace: str) -> None:
    inventory = GROUND_TRUTH[trace]["inventory"]
    summary = _summary(trace)
    cats = inventory["cats"]
    activities = sum(cats.get(c, 0) for c in ("kernel", "gpu_memcpy", "gpu_memset", "Kernel", "Memcpy", "Memset"))
    if trace.startswith("ascend"):
        activities = sum(1 for e in TraceFile(real_traces_or_skip(trace)).events()
                         if e.get("ph") == "X" and e.get("pid") == 800)  # the "Ascend Hardware" process
    assert sum(o.count for o in summary.device_ops) == activities
    if not trace.startswith("ascend"):
        kernels = sum(o.count for o in summary.device_ops if not o.name.startswith(("Memcpy", "Memset")))
        assert kernels == inventory["kernel_events_cat_kernel"] + inventory["kernel_events_cat_Kernel_legacy"]
    assert len(summary.steps) == inventory["host_profiler_steps"]
    assert len({s.step for s in summary.steps}) == len(summary.steps)


def test_a_rocm_trace_has_two_steps_not_three() -> None:
    summary = _summary("rocm/hta_mi250_minitoy")
    assert [(s.step, round(s.duration_ns / 1e3)) for s in summary.steps] == [(1, 9288), (2, 49)]


# -- device time against HTA -------------------------------------------------------------------------------
def _as_hta_reads(name: str, tmp: Path) -> Path:
    """The trace set's folder, with sub-microsecond times rounded as HTA 0.5 does (a copy when needed)."""
    folder = real_traces_or_skip(HTA[name]["folder"])
    if not any(_has_fractional_times(folder / f) for f in HTA[name]["files"]):
        return folder
    target = tmp / name
    target.mkdir()
    for file in HTA[name]["files"]:
        hta_view(folder / file, target / file.removesuffix(".gz"))
    return target


def _has_fractional_times(path: Path) -> bool:
    for event in TraceFile(path).events():
        if event.get("ph") == "X":
            return event["ts"] != int(event["ts"])
    return False


def _pp(ours: float, theirs: float) -> float:
    return abs(ours - theirs)


@pytest.mark.parametrize("name", list(HTA))
def test_device_time_agrees_with_hta(name: str, tmp_path: Path) -> None:
    expected = HTA[name]
    folder = _as_hta_reads(name, tmp_path)
    summary = _summary(expected["folder"]) if folder.parent != tmp_path else summarize(folder, top=0)
    entries = {(d.rank if d.rank is not None else 0): d for d in summary.device_time}
    assert sorted(entries) == expected["ranks"]
    busy_all = 0
    kinds_all: dict[str, float] = {}
    for rank, theirs in expected["per_rank"].items():
        ours = entries[int(rank)]
        breakdown = theirs["temporal_breakdown"]
        assert ours.span_ns / 1000 == pytest.approx(breakdown["kernel_time(us)"], rel=0.001)
        assert _pp(100 * ours.idle_share, breakdown["idle_time_pctg"]) <= 1
        assert _pp(100 * ours.compute_ns / ours.span_ns, breakdown["compute_time_pctg"]) <= 1
        assert _pp(100 * (ours.busy_ns - ours.compute_ns) / ours.span_ns, breakdown["non_compute_time_pctg"]) <= 1
        if theirs["comp_comm_overlap_pctg"] is None:
            assert ours.comm_overlapped_share is None
        else:
            assert _pp(100 * ours.comm_overlapped_share, theirs["comp_comm_overlap_pctg"]) <= 1
        idle_per_stream: dict[str, float] = {}
        for row in theirs["idle_time_breakdown_per_stream"]:
            idle_per_stream[str(row["stream"])] = idle_per_stream.get(str(row["stream"]), 0.0) + row["idle_time"]
        streams = {s.stream: s for s in ours.streams}
        assert set(streams) == set(idle_per_stream)
        for stream, idle in idle_per_stream.items():
            assert _pp(100 * streams[stream].idle_ns / ours.span_ns, 100 * idle * 1000 / ours.span_ns) <= 1, stream
        sums: dict[str, float] = {}
        for row in theirs["kernel_metrics"]:
            kind = HTA_KINDS[row["kernel_type"]]
            sums[kind] = sums.get(kind, 0.0) + row["sum (us)"]
        singles = {k.kind: k.total_ns / 1000 for k in ours.kernel_types if k.count}
        assert singles == pytest.approx(sums, rel=0.01)
        busy_all += ours.busy_ns
        for row in ours.kernel_types:
            kinds_all[row.kind] = kinds_all.get(row.kind, 0.0) + row.time_ns
    theirs_kinds = {"+".join(HTA_KINDS[p] for p in r["kernel_type"].split(" overlapping ")): r["percentage"]
                    for r in expected["kernel_type_breakdown_all_ranks"]}
    for kind in set(theirs_kinds) | set(kinds_all):
        assert _pp(100 * kinds_all.get(kind, 0.0) / busy_all, theirs_kinds.get(kind, 0.0)) <= 1, kind


@pytest.mark.parametrize("name", ["hta_a100_nccl_2rank_r0", "hta_mi250_minitoy"])
def test_without_hta_rounding_the_figures_stay_close(name: str) -> None:
    """On traces with nanosecond times our figures use the times as written; HTA rounds them inward."""
    theirs = HTA[name]["per_rank"]["0"]
    ours = _summary(HTA[name]["folder"]).device_time[0]
    assert _pp(100 * ours.idle_share, theirs["temporal_breakdown"]["idle_time_pctg"]) <= 1
    assert _pp(100 * ours.compute_ns / ours.span_ns, theirs["temporal_breakdown"]["compute_time_pctg"]) <= 1
    if theirs["comp_comm_overlap_pctg"] is not None:
        assert _pp(100 * ours.comm_overlapped_share, theirs["comp_comm_overlap_pctg"]) <= 1


# -- Ascend -----------------------------------------------------------------------------------------------------
def test_ascend_device_time_matches_the_traces_own_overlap_analysis() -> None:
    summary = _summary(ASCEND)
    (ours,) = summary.device_time
    (stated,) = [s for s in summary.device_time_stated if s.source == "overlap lanes"]
    assert ours.device == stated.device == "NPU"
    assert ours.compute_ns == pytest.approx(stated.compute_ns, rel=0.01)
    assert ours.idle_ns == pytest.approx(stated.idle_ns, rel=0.01)
    assert ours.communication_ns == stated.communication_ns == 0
    assert ours.span_ns == pytest.approx(stated.compute_ns + stated.idle_ns, rel=0.01)


def test_ascend_host_threads_nest_across_its_two_host_processes() -> None:
    ops = {o.name: o for o in _summary(ASCEND).cpu_ops}
    dequeue = [o for name, o in ops.items() if name.startswith("Dequeue@")]
    assert sum(o.count for o in dequeue) == 148
    assert sum(o.self_ns for o in dequeue) < 1_000_000  # about 0.5 ms: the AscendCL calls run inside
    assert sum(o.total_ns for o in dequeue) > 9_000_000
    assert sum(o.share for o in ops.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("table", ["kernel_details_hccl_run.csv", "kernel_details_matmul_run.csv"])
def test_a_directory_of_only_tables_is_summarized(table: str, tmp_path: Path) -> None:
    shutil.copy(real_traces_or_skip(f"{ASCEND}/{table}"), tmp_path / table)
    summary = summarize(tmp_path, top=0)
    rows = [line for line in (tmp_path / table).read_text().splitlines()[1:] if line.strip()]
    assert sum(o.count for o in summary.device_ops) == len(rows)
    (entry,) = summary.device_time
    assert 0 < entry.busy_ns <= entry.span_ns
    assert entry.steps and {s.step for s in entry.steps} <= {int(r.split(",")[0]) for r in rows}
    if "hccl" in table:
        assert entry.communication_ns > 0 and entry.comm_overlapped_share is not None
    assert summary.sources[0].layout == "tables"


# -- 6. several ranks ---------------------------------------------------------------------------------------------
def test_ranks_are_carried_and_steps_share_one_clock() -> None:
    summary = _summary("cuda/hta_sampled_2rank")
    assert summary.metadata["ranks"] == [0, 1]
    assert {o.rank for o in summary.cpu_ops} == {o.rank for o in summary.device_ops} == {0, 1}
    for rank in (0, 1):
        assert sum(o.share for o in summary.cpu_ops if o.rank == rank) == pytest.approx(1.0)
    folder = real_traces_or_skip("cuda/hta_sampled_2rank")
    starts = {}
    for rank in (0, 1):
        events = load_trace(folder / f"sampled_rank-{rank}.json.gz")["traceEvents"]
        starts.update({(rank, int(e["name"].split("#")[1])): e["ts"] for e in events
                       if str(e.get("name", "")).startswith("ProfilerStep#") and e.get("cat") == "user_annotation"})
    origin = min(starts.values())
    assert {(s.rank, s.step): s.start_ns for s in summary.steps} == \
        {key: round((ts - origin) * 1000) for key, ts in starts.items()}
    assert summary.metadata["step_skew_ns"] == {
        str(step): round(abs(starts[(0, step)] - starts[(1, step)]) * 1000) for step in (551, 552)}


def test_merge_of_real_ranks_and_its_refusals(tmp_path: Path) -> None:
    folder = real_traces_or_skip("cuda/hta_sampled_2rank")
    run = tmp_path / "run"
    shutil.copytree(folder, run / "nested")
    result = merge_traces(sorted((run / "nested").glob("*.json.gz")), tmp_path / "merged.json.gz")
    assert result.ranks == [0, 1]
    shutil.copy(folder / "sampled_rank-0.json.gz", run / "again.json.gz")
    paths = sorted(run.rglob("*.json.gz"))
    with pytest.raises(TraceError, match="rank 0 appears in 2 traces.*--allow-mixed-runs"):
        merge_traces(paths, tmp_path / "refused.json")
    mixed = merge_traces(paths, tmp_path / "mixed.json", allow_mixed_runs=True)
    names = {e["args"]["name"] for e in load_trace(mixed.output)["traceEvents"]
             if e.get("ph") == "M" and e.get("name") == "process_name" and e["pid"] < 10**9}
    assert names == {"rank 0", "rank 0 (copy 2)", "rank 1"}


def test_the_json_summary_carries_device_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from npuprofile.cli.main import main as cli_main

    folder = real_traces_or_skip("cuda/hta_sampled_2rank")
    out = tmp_path / "s.json"
    assert cli_main(["summarize", str(folder), "--json", "-q", "--top", "3", "-o", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [(d["rank"], d["device"]) for d in data["device_time"]] == [(0, "GPU 0"), (1, "GPU 1")]
    entry = data["device_time"][0]
    assert set(entry) == {"rank", "device", "span_ns", "busy_ns", "idle_ns", "idle_share", "compute_ns",
                          "communication_ns", "memory_ns", "comm_overlapped_share", "streams", "kernel_types",
                          "steps"}
    assert [s["step"] for s in entry["steps"]] == [551, 552]
    assert len([o for o in data["cpu_ops"] if o["rank"] == 0]) == 3
    shares = _summary("cuda/hta_sampled_2rank").cpu_ops
    top = {(o["rank"], o["name"]): o["share"] for o in data["cpu_ops"]}
    assert all(top[(o.rank, o.name)] == pytest.approx(o.share) for o in shares if (o.rank, o.name) in top)
    assert cli_main(["summarize", str(folder), "-q", "--include-last-step"]) == 0
    assert "Device time" in capsys.readouterr().out
