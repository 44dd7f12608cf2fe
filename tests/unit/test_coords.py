"""Parallel coordinates: parsing, file names, summaries, all-ranks rows and merge lanes."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import npuprofile as npp
from npuprofile.analysis.merge import identify, merge_traces
from npuprofile.cli.main import main as cli_main
from npuprofile.errors import ConfigError, TraceError
from npuprofile.sessions import config as _config
from npuprofile.sessions.coords import format_coords, parse_coords, parse_stage, read_coords
from npuprofile.sessions.files import STEM_MAX, default_stem
from npuprofile.sessions.gather import RankPayload, combine
from npuprofile.summary import text
from tests.conftest import load_trace

keys = st.from_regex(r"[a-z](?:[a-z_]{0,10}[a-z])?", fullmatch=True)
values = st.integers(0, 999_999)
coord_dicts = st.dictionaries(keys, values, min_size=1, max_size=8)


# -- parsing --------------------------------------------------------------------------------------


def test_coords_parse_from_a_dict_text_and_pairs() -> None:
    assert parse_coords({"tp": 0, "dp": 1, "pp": 0}, "coords") == (("tp", 0), ("dp", 1), ("pp", 0))
    assert parse_coords("tp=0, dp=1", "NPUPROFILE_COORDS") == (("tp", 0), ("dp", 1))
    assert parse_coords([("ep", 3)], "coords") == (("ep", 3),)
    assert parse_coords(None, "coords") is None and parse_coords(" ", "coords") is None


@pytest.mark.parametrize("value, message", [
    ({"TP": 0}, "key 'TP'"),
    ({"tp1": 0}, "key 'tp1'"),
    ({"tp_": 0}, "key 'tp_'"),
    ({"tp": -1}, "tp=-1"),
    ({"tp": True}, "tp=True"),
    ({"tp": 1.5}, "tp=1.5"),
    ({"tp": 1_000_000}, "tp=1000000"),
    ("tp=0,tp=1", "appears twice"),
    ("tp:0", "not 'key=number'"),
    ("tp=x", "tp='x'"),
    ({f"k{'abcdefghi'[i]}": i for i in range(9)}, "has 9 keys"),
    (42, "is not coordinates"),
])
def test_bad_coords_name_the_value(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_coords(value, "coords")


@given(coord_dicts)
def test_written_coords_read_back(coords: dict[str, int]) -> None:
    parsed = parse_coords(coords, "coords")
    assert read_coords(format_coords(parsed)) == coords


@given(st.text(alphabet="tpd=,0123456789 _", max_size=20))
def test_coords_text_parses_or_fails_cleanly(text_value: str) -> None:
    try:
        parsed = parse_coords(text_value, "NPUPROFILE_COORDS")
    except ConfigError as exc:
        assert "NPUPROFILE_COORDS" in str(exc)
        return
    if parsed is not None:
        assert read_coords(format_coords(parsed)) == dict(parsed)


def test_coords_come_from_the_environment(tmp_path: Path) -> None:
    config = _config.resolve(environ={"NPUPROFILE_COORDS": "tp=2,dp=0"}, output_dir=tmp_path)
    assert config.coords == (("tp", 2), ("dp", 0))
    assert config.to_dict()["coords"] == {"tp": 2, "dp": 0}
    with pytest.raises(ConfigError, match="NPUPROFILE_COORDS='tp'"):
        _config.resolve(environ={"NPUPROFILE_COORDS": "tp"})


def test_stage_names() -> None:
    assert parse_stage("decode", "stage") == "decode" and parse_stage("prefill-2", "stage") == "prefill-2"
    for bad in ("tp0", "de.code", "", "x" * 33, "2nd"):
        with pytest.raises(ConfigError, match="stage name"):
            parse_stage(bad, "stage")


def test_run_ids_up_to_200_characters() -> None:
    assert _config.parse_run_id("r" * 200, "run_id") == "r" * 200
    with pytest.raises(ConfigError, match="1-200 letters"):
        _config.parse_run_id("r" * 201, "run_id")


# -- names ------------------------------------------------------------------------------------------


def test_stem_carries_rank_coords_and_stage() -> None:
    stem = default_stem("run1", 3, (("tp", 0), ("dp", 1), ("pp", 0)), "decode")
    assert re.fullmatch(rf"run1\.rank3\.tp0-dp1-pp0\.decode\.[^.]+_{os.getpid()}", stem), stem


def test_long_run_ids_keep_names_within_file_system_limits(tmp_path: Path) -> None:
    coords = tuple((key, 999_999) for key in ("tp", "dp", "pp", "ep"))
    first = default_stem("a" * 190 + "-one", 12345, coords, "prefill")
    second = default_stem("a" * 190 + "-two", 12345, coords, "prefill")
    assert len(first) <= STEM_MAX and len(second) <= STEM_MAX and first != second
    assert first == default_stem("a" * 190 + "-one", 12345, coords, "prefill")  # the same on every rank
    assert ".rank12345.tp999999-dp999999-pp999999-ep999999.prefill." in first
    path = tmp_path / f"{first}.{10**19}.pt.trace.json.gz"
    path.write_text("{}")  # a name the file system takes
    assert len(path.name) <= 255


def test_session_files_summaries_and_trace_header_carry_coords(tmp_path: Path) -> None:
    with npp.session(output_dir=tmp_path, coords={"tp": 1, "dp": 0}, run_id="job") as s:
        with npp.profile_region("work"):
            sum(range(100))
    (trace,) = s.trace_paths
    assert ".rank0.tp1-dp0." in trace.name and ".rank0.tp1-dp0." in s.summary_paths[0].name
    header = load_trace(trace)["npuprofile"]
    assert header["coords"] == {"tp": 1, "dp": 0} and header["run_id"] == "job"
    saved = json.loads(s.summary_paths[0].read_text())
    assert saved["metadata"]["coords"] == {"tp": 1, "dp": 0}
    assert s.summary().run.coords == {"tp": 1, "dp": 0}
    assert "tp=1 dp=0" in text.headline(s.summary())
    found = identify(trace)
    assert (found.run_id, found.rank, found.coords) == ("job", 0, {"tp": 1, "dp": 0})


def test_on_demand_captures_carry_coords(tmp_path: Path) -> None:
    from npuprofile.sessions.on_demand import write_trigger

    with npp.on_demand(output_dir=tmp_path, coords="tp=3", poll_interval=0) as armed:
        write_trigger(tmp_path, steps=2)
        for _ in range(4):
            armed.step()
    (capture,) = armed.captures
    assert capture["traces"] and all(".rank0.tp3." in Path(p).name for p in capture["traces"])


# -- across ranks -------------------------------------------------------------------------------------


def _rank_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rank: int, coords: dict[str, int]) -> Path:
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", "4")
    with npp.session(output_dir=tmp_path, coords=coords, run_id="job") as s:
        with npp.profile_region(f"work{rank}"):
            sum(range(100))
    return s.trace_paths[0]


def test_merge_labels_and_groups_lanes_by_coords(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layout = {0: {"tp": 0, "dp": 1}, 1: {"tp": 1, "dp": 0}, 2: {"tp": 0, "dp": 0}, 3: {"tp": 1, "dp": 1}}
    paths = [_rank_trace(tmp_path, monkeypatch, rank, coords) for rank, coords in layout.items()]

    def lanes(result_path: Path) -> list[str]:
        events = load_trace(result_path)["traceEvents"]
        names = {e["pid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e["name"] == "process_name"}
        order = {e["pid"]: e["args"]["sort_index"] for e in events
                 if e.get("ph") == "M" and e["name"] == "process_sort_index"}
        return [names[pid] for pid in sorted(names, key=order.__getitem__)]

    plain = merge_traces(paths, tmp_path / "plain.json")
    assert lanes(plain.output) == ["rank 0 tp0-dp1", "rank 1 tp1-dp0", "rank 2 tp0-dp0", "rank 3 tp1-dp1"]
    assert cli_main(["merge", *map(str, paths), "-o", str(tmp_path / "grouped.json"), "--group-by", "tp,dp", "-q"]) == 0
    assert lanes(tmp_path / "grouped.json") == [
        "tp0-dp0 | rank 2", "tp0-dp1 | rank 0", "tp1-dp0 | rank 1", "tp1-dp1 | rank 3",
    ]
    assert lanes(merge_traces(paths, tmp_path / "by_dp.json", group_by=["dp"]).output) == [
        "dp0 | rank 1 tp1", "dp0 | rank 2 tp0", "dp1 | rank 0 tp0", "dp1 | rank 3 tp1",
    ]
    merged = load_trace(tmp_path / "grouped.json")["npuprofileMerge"]["lanes"]
    assert {lane["rank"]: lane["coords"] for lane in merged} == layout
    with pytest.raises(TraceError, match="has no coordinate 'ep'"):
        merge_traces(paths, tmp_path / "x.json", group_by=["ep"])


def test_all_ranks_rows_show_coords() -> None:
    from npuprofile.core.stats import RegionStats

    payloads = []
    for rank in range(2):
        stats = RegionStats("step")
        stats.add_batch([1000 * (rank + 1)])  # one region, nothing nested: self time = duration
        payloads.append(RankPayload(rank, True, {"rank": rank, "coords": {"tp": rank, "dp": 0}}, [stats], [], []))
    gathered = combine(payloads, {"rank": 0})
    assert [view.metadata["coords"] for view in gathered.ranks] == [{"tp": 0, "dp": 0}, {"tp": 1, "dp": 0}]
    table = gathered.rank_table()
    assert table.splitlines()[0].split()[:3] == ["region", "rank", "coords"]
    assert any(line.split()[:3] == ["step", "1", "tp1-dp0"] for line in table.splitlines())
    assert "coords" in _gather_shared()


def _gather_shared() -> tuple[str, ...]:
    from npuprofile.sessions.gather import SHARED_METADATA

    return SHARED_METADATA
