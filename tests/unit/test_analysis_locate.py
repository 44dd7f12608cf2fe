"""Finding inputs with the backends' layouts: traces at any depth, tables, rank files, LFS pointers."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from npuprofile.analysis import summarize
from npuprofile.analysis.layouts import trace_rules
from npuprofile.analysis.locate import find_tables, find_traces, lfs_pointer, rank_from_files
from npuprofile.backends.base import TraceLayout
from npuprofile.errors import TraceError
from tests._trace_factory import write_ascend_layout, write_trace, x_event

POINTER = (b"version https://git-lfs.github.com/spec/v1\n"
           b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 2992153\n")


def test_generic_names_are_traces_only_when_they_look_like_one(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "run" / "rank0.json", [x_event("aten::mm", 1.0, 2.0)])
    packed = tmp_path / "deep" / "er" / "rank1.json.gz"
    packed.parent.mkdir(parents=True)
    packed.write_bytes(gzip.compress(trace.read_bytes()))
    (tmp_path / "run" / "communication.json").write_text(json.dumps({"group": {"op": [1, 2]}}))
    (tmp_path / "run" / "notes.json").write_text("[1, 2, 3]")
    (tmp_path / "run.summary.json").write_text("{}")
    (tmp_path / "run" / "profiler_info_3.json").write_text(json.dumps({"rank_id": 3}))
    assert find_traces(tmp_path) == sorted([trace, packed])


def test_specific_names_are_taken_even_when_broken(tmp_path: Path) -> None:
    # the user must hear what is wrong with the file, not "no traces found"
    broken = tmp_path / "w.1.pt.trace.json.gz"
    broken.write_bytes(b"\x1f\x8b truncated")
    assert find_traces(tmp_path) == [broken]
    with pytest.raises(TraceError, match="gzip"):
        summarize(tmp_path)


def test_a_git_lfs_pointer_is_reported_as_such(tmp_path: Path) -> None:
    pointer = tmp_path / "rank0.json.gz"
    pointer.write_bytes(POINTER)
    assert "Git LFS pointer" in (lfs_pointer(pointer) or "")
    with pytest.raises(TraceError, match="Git LFS pointer.*2992153 bytes.*git lfs pull"):
        find_traces(pointer)
    with pytest.raises(TraceError, match="Git LFS pointer"):
        find_traces(tmp_path)
    with pytest.raises(TraceError, match="Git LFS pointer"):
        summarize(tmp_path)
    real = write_trace(tmp_path / "rank1.json", [x_event("aten::mm", 1.0, 2.0)])
    assert find_traces(tmp_path) == [real]  # pointers beside real traces are skipped with a warning
    assert lfs_pointer(real) is None


def test_tables_and_a_directory_of_only_tables(tmp_path: Path) -> None:
    table = tmp_path / "out" / "kernel_details.csv"
    table.parent.mkdir()
    table.write_text("Step Id,Name,Type,Accelerator Core,Start Time(us),Duration(us),Stream ID\n"
                     "1,MatMul_1,MatMul,AI_CORE,100.0,10.0,3\n")
    assert find_tables(tmp_path) == [table]
    assert find_tables(table) == [table]
    with pytest.raises(TraceError, match="no trace files found"):
        find_traces(tmp_path)
    result = summarize(tmp_path)
    assert [(o.name, o.count, o.self_ns) for o in result.device_ops] == [("MatMul_1", 1, 10_000)]


def test_rank_files_beside_a_trace_or_one_level_up(tmp_path: Path) -> None:
    trace = write_ascend_layout(tmp_path)
    assert rank_from_files(trace) is None
    (trace.parent.parent / "profiler_info_5.json").write_text(json.dumps({"rank_id": 5, "config": {}}))
    assert rank_from_files(trace) == 5
    (trace.parent.parent / "profiler_info_5.json").write_text("not json")
    assert rank_from_files(trace) == 5  # the name says it
    assert summarize(tmp_path).sources[0].rank == 5


def test_patterns_come_from_the_layouts(tmp_path: Path) -> None:
    odd = write_trace(tmp_path / "capture.mytrace", [x_event("op", 1.0, 2.0)])
    mine = TraceLayout(backend="mine", trace_globs=("*.mytrace",))
    assert find_traces(tmp_path, trace_rules([mine])) == [odd]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TraceError, match=r"looked for \*\.mytrace"):
        find_traces(empty, trace_rules([mine]))
