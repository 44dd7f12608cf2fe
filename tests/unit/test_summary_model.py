"""One summary model: every producer makes it, every renderer takes it, the JSON reads back."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npuprofile as npp
from npuprofile.analysis import summarize
from npuprofile.analysis.runinfo import load_session_summary
from npuprofile.cli.main import main as cli_main
from npuprofile.errors import ConfigError, TraceError
from npuprofile.sessions.gather import RankPayload, combine
from npuprofile.summary import csv as summary_csv
from npuprofile.summary import html as summary_html
from npuprofile.summary import json as summary_json
from npuprofile.summary import text as summary_text
from npuprofile.summary.model import (
    DEVICE,
    HOST,
    SCHEMA_VERSION,
    SYNC,
    AllRanksSummary,
    DeviceTime,
    KernelTypeTime,
    MemoryRow,
    OpRow,
    RankView,
    RegionRow,
    SourceRow,
    StepDeviceTime,
    StepRow,
    Straggler,
    StreamTime,
    Summary,
    TraceSummary,
)
from tests._trace_factory import REGIONS, shared_traces, write_ascend_layout
from tests.fakes import ManualClock, register_clock

REGION_KEYS = {"name", "count", "total_ns", "self_ns", "mean_ns", "std_ns", "min_ns", "max_ns",
               "p50_ns", "p90_ns", "p95_ns", "p99_ns", "share", "exact"}


# -- producers ------------------------------------------------------------------------------------
def _timed_session(clock: ManualClock, *, slow: int = 0) -> Any:
    with npp.session(backend="manual", trace=False, run_id="run-1") as s:
        for index in s.steps(range(4), warmup=1):
            with npp.profile_region("outer"):
                clock.advance(100 + index)
                with npp.profile_region("inner"):
                    clock.advance(1000 * (index + 1) + slow)
    return s


def session_summary(tmp_path: Path) -> Summary:
    clock = ManualClock()
    register_clock(npp.backends, "manual", clock)
    return _timed_session(clock).summary()


def all_ranks_summary(tmp_path: Path) -> AllRanksSummary:
    clock = ManualClock()
    register_clock(npp.backends, "manual", clock)
    payloads = []
    for rank, slow in ((0, 0), (1, 500), (2, 0)):
        s = _timed_session(clock, slow=slow)
        local = s.summary()
        meta = dict(local.metadata, rank=rank)
        payloads.append(RankPayload(rank, rank != 2, meta, s._region_stats() if rank != 2 else [], local.ops,
                                    [StepRow(st_.index, st_.duration_ns, st_.regions, rank=rank) for st_ in local.steps]))
    return combine(payloads, dict(payloads[0].metadata, world_size=3))


def bench_summary(tmp_path: Path) -> Summary:
    clock = ManualClock()
    register_clock(npp.backends, "manual", clock)
    return npp.bench(lambda: clock.advance(1234), warmup=1, repeat=4, backend="manual", name="call").summary


def trace_summary(tmp_path: Path) -> TraceSummary:
    write_ascend_layout(tmp_path)
    return summarize(tmp_path)


PRODUCERS: dict[str, Callable[[Path], Summary]] = {
    "session": session_summary, "all_ranks": all_ranks_summary, "bench": bench_summary, "trace": trace_summary,
}


# -- round trips ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(PRODUCERS))
def test_each_producer_round_trips_through_its_json(kind: str, tmp_path: Path) -> None:
    model = PRODUCERS[kind](tmp_path)
    assert model.kind == kind and model.regions
    path = tmp_path / f"{kind}.summary.json"
    written = model.to_json(path)
    loaded = summary_json.load(path)
    assert type(loaded) is type(model)
    assert summary_json.render(loaded) == written
    assert str(loaded) == str(model) and loaded.to_csv() == model.to_csv()
    assert [r.name for r in loaded.regions] == [r.name for r in model.regions]
    assert loaded.region(model.regions[0].name) == model.regions[0]
    assert loaded.steps == model.steps and loaded.ops == model.ops
    # what the trace analysis reads of a summary file next to a trace
    data = load_session_summary(path)
    assert data is not None and data["schema_version"] == SCHEMA_VERSION
    assert [r["name"] for r in data["regions"]] == [r.name for r in model.regions]
    assert data["metadata"] == loaded.metadata and data["kind"] == kind


def test_a_session_summary_file_is_read_back_by_the_trace_analysis(tmp_path: Path) -> None:
    traces = shared_traces()
    session = traces["session"]
    loaded = summary_json.load(session.summary_paths[0])
    assert loaded.kind == "session" and {r.name for r in loaded.regions} == set(REGIONS)
    assert loaded.metadata["run_id"] == session.run_id
    assert loaded.steps and all(step.rank == 0 for step in loaded.steps)
    assert session.summary_paths[1].read_text() == str(loaded) + "\n"
    analysis = summarize(traces["plain"])
    assert analysis.metadata["run_id"] == loaded.metadata["run_id"]
    assert {r.name for r in analysis.regions} == {r.name for r in loaded.regions}


def test_every_producer_writes_one_layout_with_the_same_region_keys(tmp_path: Path) -> None:
    documents = {kind: json.loads(make(tmp_path / kind).to_json()) for kind, make in PRODUCERS.items()}
    layouts = {kind: set(doc) for kind, doc in documents.items()}
    assert len({frozenset(keys) for keys in layouts.values()}) == 1, layouts
    for kind, doc in documents.items():
        assert doc["schema_version"] == SCHEMA_VERSION and doc["kind"] == kind
        assert doc["regions"] and all(set(row) == REGION_KEYS for row in doc["regions"]), kind
        for rows in doc["per_rank"].values():
            assert all(set(row) == REGION_KEYS for row in rows)


def test_the_gathered_model_keeps_ranks_stragglers_and_the_slowest_steps(tmp_path: Path) -> None:
    model = all_ranks_summary(tmp_path)
    assert [view.rank for view in model.ranks] == [0, 1, 2] and sorted(model.per_rank) == [0, 1]
    assert model.region("inner").count == 2 * 3
    assert model.stragglers["inner"].rank == 1 and model.stragglers["inner"].excess > 0
    assert model.rank_region(1, "inner").total_ns - model.rank_region(0, "inner").total_ns == 3 * 500
    assert all(step.rank == 1 for step in model.steps)  # rank 1 is slower in every step
    text = str(model)
    assert "straggler: 'inner' is slowest on rank 1" in text
    rows = list(csv.DictReader(io.StringIO(model.to_csv())))
    assert sorted({r["rank"] for r in rows if r["section"] == "rank_region"}) == ["0", "1"]


# -- renderers on one model ---------------------------------------------------------------------
def _device_time() -> list[DeviceTime]:
    step = StepDeviceTime(step=1, span_ns=1000, busy_ns=800, idle_ns=200, idle_share=0.2, compute_ns=600,
                          communication_ns=150, memory_ns=50, comm_overlapped_share=0.5)
    return [DeviceTime(rank=0, device="cuda:0", span_ns=2000, busy_ns=1500, idle_ns=500, idle_share=0.25,
                       compute_ns=1100, communication_ns=300, memory_ns=100, comm_overlapped_share=None,
                       streams=[StreamTime("stream 7", 40, 1400, 600, 50), StreamTime("stream 8", 3, 300, 1700, 0)],
                       kernel_types=[KernelTypeTime("compute+communication", 1000, 0.66)], steps=[step])]


def rich_model(device_time: bool = True) -> AllRanksSummary:
    """A hand-made gathered summary with every section filled."""
    full = RegionRow("forward", 4, 4000, 1000, 1000.0, 12.5, 900, 1100, 990.0, 1080.0, 1090.0, 1098.0)
    nested = RegionRow("attention", 8, 3000, 3000, 375.0, 3.0, 300, 450, 370.0, 440.0, 445.0, 449.0)
    return AllRanksSummary(
        regions=[full, nested],
        ops=[OpRow("aten::mm", 8, 700, 900, 2000, 2100),
             OpRow("aten::add", 2, 50, 60, kind=HOST), OpRow("gemm", 3, self_device_ns=310, total_device_ns=320, kind=DEVICE)],
        steps=[StepRow(0, 2100, {"forward": 2000}, start_ns=0, rank=0), StepRow(1, 2050, {"forward": 2000}, 2100, 1)],
        metadata={"backend": "cpu", "run_id": "r", "world_size": 2, "ranks": [{"rank": 0, "selected": True},
                                                                            {"rank": 1, "selected": True}]},
        memory=[MemoryRow("cuda:0", 1 << 20, 2 << 20)],
        sources=[SourceRow("/t/a.json", "torch", 100, 10, 0, None)],
        ranks=[RankView(0, True, {"rank": 0}, [full]), RankView(1, True, {"rank": 1}, [nested])],
        stragglers={"forward": Straggler("forward", 1, 4000, 3000.0)},
        device_time=_device_time() if device_time else [],
        late_events=2,
    )


def test_every_renderer_takes_the_same_model(tmp_path: Path) -> None:
    model = rich_model()
    text = summary_text.render(model, tmp_path / "s.txt")
    page = summary_html.render_report(model)
    document = json.loads(summary_json.render(model, tmp_path / "s.json"))
    table = summary_csv.render(model, tmp_path / "s.csv")
    assert (tmp_path / "s.txt").read_text() == text + "\n" and (tmp_path / "s.csv").read_text() == table
    assert json.loads((tmp_path / "s.json").read_text()) == document
    for name in ("forward", "attention", "aten::mm"):
        assert name in text and name in page and name in table
    for shown in ("Device time", "stream 7", "compute+communication", "cuda:0"):
        assert shown in text
    assert 'id="device-time"' in page and 'id="ranks"' in page and "compute+communication" not in table
    device_line = next(line for line in text.splitlines() if line.startswith("0 "))
    assert device_line.split() == ["0", "cuda:0", "2.00us", "75.0%", "25.0%", "55.0%", "15.0%", "5.0%", "–"]
    assert document["device_time"] == [d.to_dict() for d in model.device_time]
    assert document["device_time"][0]["steps"][0]["comm_overlapped_share"] == 0.5
    assert document["device_time"][0]["streams"][0]["host_wait_ns"] == 50
    assert {row["section"] for row in csv.DictReader(io.StringIO(table))} == {"region", "rank_region", "step", "op"}
    assert str(model) == text and model.to_dict() == document


def test_an_empty_device_time_renders_as_nothing() -> None:
    model = rich_model(device_time=False)
    assert "Device time" not in str(model) and 'id="device-time"' not in summary_html.render_report(model)
    assert model.to_dict()["device_time"] == []
    assert str(model) == str(rich_model()).split("\n\nDevice time")[0]


def test_text_csv_and_json_agree_on_the_numbers_of_one_model() -> None:
    model = rich_model()
    document = model.to_dict()
    rows = list(csv.DictReader(io.StringIO(model.to_csv())))
    regions = {r["name"]: r for r in rows if r["section"] == "region"}
    for item in document["regions"]:
        row = regions[item["name"]]
        for key in summary_csv.REGION_FIELDS:
            assert (float(row[key]) if row[key] else None) == item[key], (item["name"], key)
    steps = [r for r in rows if r["section"] == "step"]
    assert [(int(r["step"]), int(r["rank"]), int(r["total_ns"]), int(r["self_ns"])) for r in steps] == \
        [(s["index"], s["rank"], s["duration_ns"], s["other_ns"]) for s in document["steps"]]
    ops = {r["name"]: r for r in rows if r["section"] == "op"}
    for item in [*document["ops"], *document["cpu_ops"], *document["device_ops"]]:
        assert (int(ops[item["name"]]["self_ns"]), int(ops[item["name"]]["total_ns"])) == \
            (item["self_ns"], item["total_ns"])
        assert ops[item["name"]]["kind"] == item["kind"]
    table = model.region_table().splitlines()
    assert table[0].split() == ["region", *summary_text.DISTRIBUTION_COLUMNS]
    for line, item in zip(table[2:], document["regions"]):
        numbers = [item[k] for k in ("total_ns", "self_ns", "mean_ns", "std_ns", "min_ns", "max_ns",
                                     "p50_ns", "p90_ns", "p95_ns", "p99_ns")]
        assert line.split() == [item["name"], str(item["count"]), *map(summary_text.format_ns, numbers)]


def test_a_trace_region_table_shows_shares_and_html_tolerates_unknown_figures(tmp_path: Path) -> None:
    model = trace_summary(tmp_path)
    (row,) = model.regions
    assert row.share is not None and row.p50_ns is None and row.mean_ns == row.total_ns / row.count
    assert model.region_table().splitlines()[0].split() == ["region", "count", "total", "self", "share"]
    with pytest.raises(ConfigError, match="q=50 of region 'forward' is not kept; kept: none"):
        row.percentile(50)
    page = summary_html.render_report(session_summary(tmp_path))  # no shares, no start offsets, no sources
    assert "outer" in page and page.rstrip().endswith("</html>")


def test_ops_of_several_ranks_and_sync_markers_have_their_own_columns_and_section() -> None:
    model = TraceSummary(ops=[OpRow("aten::mm", 2, 300, 400, kind=HOST, rank=0, share=0.75),
                              OpRow("aten::mm", 2, 100, 150, kind=HOST, rank=1, share=0.25),
                              OpRow("wait", 1, self_device_ns=9, total_device_ns=9, kind=SYNC)])
    table = model.op_table(HOST).splitlines()
    assert table[0].split() == ["rank", "cpu", "op", "count", "self", "self", "%", "total"]
    assert [line.split()[:2] + line.split()[-2:-1] for line in table[2:]] == \
        [["0", "aten::mm", "75.0%"], ["1", "aten::mm", "25.0%"]]
    text = str(model)
    assert "Synchronization markers on device lanes" in text and "wait" in text.split("Synchronization")[1]
    document = model.to_dict()
    assert [o["name"] for o in document["sync_ops"]] == ["wait"] and len(document["cpu_ops"]) == 2
    assert summary_json.from_dict(document).ops == model.ops
    rows = [r for r in csv.DictReader(io.StringIO(model.to_csv())) if r["section"] == "op"]
    assert [(r["rank"], r["share"], r["kind"]) for r in rows] == [("0", "0.75", "cpu"), ("1", "0.25", "cpu"),
                                                                  ("", "", "sync")]


def test_percentiles_a_row_does_not_keep_are_refused(tmp_path: Path) -> None:
    row = session_summary(tmp_path).region("inner")
    assert row.percentile(50) == row.p50_ns
    with pytest.raises(ConfigError, match=r"q=75 of region 'inner' is not kept; kept: 50, 90, 95, 99"):
        row.percentile(75)


# -- reading --------------------------------------------------------------------------------------
def test_version_1_documents_still_load() -> None:
    session = summary_json.from_dict({
        "metadata": {"backend": "cpu", "rank": 0},
        "regions": [{"name": "r", "count": 2, "total_ns": 10, "self_ns": 10, "mean_ns": 5.0, "std_ns": 1.0,
                     "min_ns": 4, "max_ns": 6, "p50_ns": 5.0, "p90_ns": 5.8, "p95_ns": 5.9, "p99_ns": 5.98}],
        "ops": [{"name": "aten::mm", "count": 1, "self_host_ns": 3, "total_host_ns": 4,
                 "self_device_ns": 5, "total_device_ns": 6}],
        "steps": [{"index": 3, "duration_ns": 12, "regions": {"r": 10}}],
    })
    assert session.kind == "session" and session.region("r").percentile(90) == 5.8
    assert session.ops == [OpRow("aten::mm", 1, 3, 4, 5, 6)] and session.steps == [StepRow(3, 12, {"r": 10})]
    trace = summary_json.from_dict({
        "metadata": {"ranks": [0]}, "late_events": 1,
        "sources": [{"path": "a", "layout": "torch", "size_bytes": 1, "events": 2, "rank": 0, "session_summary": None}],
        "regions": [{"name": "f", "count": 2, "total_ns": 8, "self_ns": 6, "share": 0.5}],
        "steps": [{"source": 0, "rank": 0, "step": 7, "start_ns": 0, "duration_ns": 12, "regions": {"f": 6},
                   "other_ns": 6}],
        "cpu_ops": [{"name": "aten::add", "kind": "cpu", "count": 1, "self_ns": 2, "total_ns": 3}],
        "device_ops": [{"name": "k", "kind": "device", "count": 1, "self_ns": 4, "total_ns": 4}],
        "memory": [],
    })
    assert isinstance(trace, TraceSummary) and trace.region("f").mean_ns == 4.0 and trace.late_events == 1
    assert (trace.cpu_ops[0].self_host_ns, trace.device_ops[0].total_device_ns) == (2, 4)
    assert trace.steps[0].index == 7 and trace.steps[0].other_ns == 6
    gathered = summary_json.from_dict({
        "metadata": {"ranks": [{"rank": 0, "selected": True}, {"rank": 1, "selected": False}]},
        "regions": [], "per_rank": {"0": []}, "stragglers": [],
    })
    assert isinstance(gathered, AllRanksSummary) and [(v.rank, v.selected) for v in gathered.ranks] == \
        [(0, True), (1, False)]
    bench = summary_json.from_dict({"metadata": {"bench": {"name": "call"}}, "regions": []})
    assert bench.kind == "bench" and bench.name == "call"


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a JSON summary"),
    ('{"regions": "x"}', "a 'regions' list"),
    (json.dumps({"schema_version": SCHEMA_VERSION + 1, "regions": []}), f"schema_version={SCHEMA_VERSION + 1}"),
    (json.dumps({"kind": "mystery", "regions": []}), "kind='mystery'"),
    (json.dumps({"regions": [{"name": "r"}]}), "not an npuprofile summary"),
])
def test_unreadable_summary_files_are_named(content: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.summary.json"
    path.write_text(content)
    with pytest.raises(TraceError, match=message) as caught:
        summary_json.load(path)
    assert str(path) in str(caught.value)


def test_the_cli_renders_a_saved_summary_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = trace_summary(tmp_path / "traces")
    path = tmp_path / "run.trace-summary.json"
    model.to_json(path)
    assert cli_main(["summarize", str(path)]) == 0
    assert capsys.readouterr().out == model.text() + "\n"
    assert cli_main(["summarize", str(path), "--csv"]) == 0
    assert capsys.readouterr().out == model.to_csv()
    assert cli_main(["report", str(path), "-o", str(tmp_path / "r.html")]) == 0
    assert "MatMul_kernel" in (tmp_path / "r.html").read_text()


def test_public_names_are_the_model_types(tmp_path: Path) -> None:
    assert npp.StepStat is StepRow and npp.Straggler is Straggler and npp.AllRanksSummary is AllRanksSummary
    from npuprofile.analysis.summarize import OpRow as AnalysisOpRow

    assert AnalysisOpRow is OpRow
    clock = ManualClock()
    register_clock(npp.backends, "manual", clock)
    gathered = _timed_session(clock).summary(all_ranks=True)
    assert isinstance(gathered, npp.Summary) and isinstance(gathered, AllRanksSummary)


# -- the JSON round trip, as a property ------------------------------------------------------------
ns = st.integers(0, 10**12)
maybe_float = st.none() | st.floats(0, 1e12, allow_nan=False)
names = st.text("abcxyz:._", min_size=1, max_size=8)
regions = st.builds(RegionRow, names, st.integers(1, 10**6), ns, ns, st.floats(0, 1e12), maybe_float,
                    st.none() | ns, st.none() | ns, maybe_float, maybe_float, maybe_float, maybe_float,
                    st.none() | st.floats(0, 1))
ops = st.builds(OpRow, names, st.integers(0, 99), ns, ns, ns, ns, st.sampled_from(["cpu", "device", "sync", "cpu+device"]),
                st.none() | st.integers(0, 7), st.none() | st.floats(0, 1))
steps = st.builds(StepRow, st.integers(0, 99), ns, st.dictionaries(names, ns, max_size=3), st.none() | ns,
                  st.none() | st.integers(0, 7), st.none() | st.integers(0, 3))
shares = st.floats(0, 1)
device = st.builds(DeviceTime, st.none() | st.integers(0, 7), names, ns, ns, ns, shares, ns, ns, ns,
                   st.none() | shares, st.lists(st.builds(StreamTime, names, st.integers(0, 99), ns, ns, ns), max_size=2),
                   st.lists(st.builds(KernelTypeTime, names, ns, shares, st.integers(0, 9), ns), max_size=2),
                   st.lists(st.builds(StepDeviceTime, st.integers(0, 9), ns, ns, ns, shares, ns, ns, ns,
                                      st.none() | shares), max_size=2))


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(["session", "trace", "bench"]), regions=st.lists(regions, max_size=4),
       ops=st.lists(ops, max_size=4), steps=st.lists(steps, max_size=4), device_time=st.lists(device, max_size=2),
       late=st.integers(0, 5))
def test_any_model_reads_back_as_it_was_written(kind: str, regions: list[RegionRow], ops: list[OpRow],
                                                steps: list[StepRow], device_time: list[DeviceTime], late: int) -> None:
    ops.sort(key=lambda o: ["cpu+device", "cpu", "device", "sync"].index(o.kind))  # the JSON groups rows by kind
    model = Summary(regions, ops, steps, {"backend": "x"}, kind=kind, device_time=device_time, late_events=late)
    loaded = summary_json.from_dict(json.loads(summary_json.render(model)))
    assert (loaded.regions, loaded.ops, loaded.steps, loaded.device_time) == (regions, ops, steps, device_time)
    assert loaded.late_events == late and loaded.kind == kind


def _as_asdict_gives_it(row: Any) -> dict[str, Any]:
    """What a row's JSON view must be: every field as dataclasses.asdict converts it, then its derived figures."""
    data = dataclasses.asdict(row)
    data.update({name: getattr(row, name) for name in row.derived})
    return data


@settings(max_examples=80, deadline=None)
@given(row=st.one_of(regions, ops, steps, device))
def test_a_rows_json_view_is_its_fields_as_asdict_converts_them(row: Any) -> None:
    # nested rows (a device's streams, kernel types and steps) carry their fields only, as asdict gives them
    view = row.to_dict()
    assert view == _as_asdict_gives_it(row)
    assert list(view) == list(_as_asdict_gives_it(row))  # same keys in the same order
