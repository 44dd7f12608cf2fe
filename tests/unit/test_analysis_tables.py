"""A backend's own tables (torch_npu's CSV files) read beside a trace or instead of one."""

from __future__ import annotations

from pathlib import Path

import pytest

from npuprofile.analysis import summarize
from npuprofile.backends.npu.tables import read_tables
from tests._trace_factory import write_ascend_layout

STEP_TRACE = ("Device_id,Step,Computing,Communication(Not Overlapped),Overlapped,Communication,Free,Stage,Bubble,"
              "Communication(Not Overlapped and Exclude Receive),Preparing\n"
              "0,1,600.5,100,20,120,279.5,1000,0,100,3.2\n"
              "0,2,610,90,30,120,300,1000,0,90,3.0\n")
OP_STATISTIC = ("Device_id,OP Type,Core Type,Count,Total Time(us),Min Time(us),Avg Time(us),Max Time(us),Ratio(%)\n"
                "0,MatMulV2,AI_CORE,40,1200.5,20,30.0125,45,60.1\n"
                "0,Add,AI_VECTOR_CORE,10,100,8,10,12,5\n"
                "0,Broken,AI_CORE,N/A,N/A,N/A,N/A,N/A,N/A\n")
KERNELS = ("Step Id,Model ID,Task ID,Stream ID,Name,Type,Accelerator Core,Start Time(us),Duration(us),Wait Time(us)\n"
           "1,4294967295,1,3,MatMul_1,MatMulV2,AI_CORE,1000.0,100,0\n"
           "1,4294967295,N/A,N/A,hcom_allReduce__1,hcom_allReduce_,HCCL,1050.0,200,0\n"
           '1,4294967295,2,3,Cast_2,Cast,AI_VECTOR_CORE,"1300.0\t",10,0\n'
           "2,4294967295,3,3,MemCopy_3,MEMCPY_ASYNC,AI_CPU,2000.0,5,0\n"
           "2,4294967295,4,3,Skipped,Cast,AI_CORE,N/A,N/A,0\n")


def test_a_directory_of_only_tables(tmp_path: Path) -> None:
    (tmp_path / "op_statistic.csv").write_text(OP_STATISTIC)
    (tmp_path / "step_trace_time.csv").write_text(STEP_TRACE)
    summary = summarize(tmp_path)
    assert [(o.name, o.count, o.total_ns) for o in summary.device_ops] == \
        [("MatMulV2", 40, 1_200_500), ("Add", 10, 100_000)]
    assert not summary.device_time  # op totals have no timeline
    stated = {s.step: s for s in summary.device_time_stated}
    assert set(stated) == {1, 2}
    assert (stated[1].device, stated[1].compute_ns, stated[1].communication_ns, stated[1].idle_ns) == \
        ("NPU 0", 600_500, 120_000, 279_500)
    assert stated[2].communication_not_overlapped_ns == 90_000
    assert summary.sources[0].layout == "tables" and summary.sources[0].events == 4


def test_kernel_rows_give_device_time_by_their_steps(tmp_path: Path) -> None:
    (tmp_path / "kernel_details.csv").write_text(KERNELS)
    (tmp_path / "op_statistic.csv").write_text(OP_STATISTIC)  # per-kernel rows win over op totals
    summary = summarize(tmp_path)
    assert sorted((o.name, o.count) for o in summary.device_ops) == \
        [("Cast_2", 1), ("MatMul_1", 1), ("MemCopy_3", 1), ("hcom_allReduce__1", 1)]
    (entry,) = summary.device_time
    assert (entry.span_ns, entry.busy_ns) == (1_005_000, 265_000)  # 1000..1250, 1300..1310, 2000..2005
    assert (entry.compute_ns, entry.communication_ns, entry.memory_ns) == (110_000, 200_000, 5_000)
    assert entry.comm_overlapped_share == pytest.approx(50 / 200)
    assert [(s.step, s.busy_ns) for s in entry.steps] == [(1, 260_000), (2, 5_000)]
    assert {s.stream for s in entry.streams} == {"3", "HCCL"}


def test_tables_beside_a_trace_add_only_their_stated_figures(tmp_path: Path) -> None:
    trace = write_ascend_layout(tmp_path)
    (trace.parent / "step_trace_time.csv").write_text(STEP_TRACE)
    (trace.parent / "kernel_details.csv").write_text(KERNELS)
    summary = summarize(tmp_path)
    assert len(summary.sources) == 1 and summary.sources[0].layout == "array"
    assert {o.name for o in summary.device_ops} == {"MatMul_kernel", "Add_kernel", "hcom_allReduce_"}
    assert [s.step for s in summary.device_time_stated] == [1, 2]
    assert all("step_trace_time.csv" in s.source for s in summary.device_time_stated)


def test_the_reader_skips_what_it_does_not_know(tmp_path: Path) -> None:
    other = tmp_path / "api_statistic.csv"
    other.write_text("Name,Count\nx,1\n")
    assert read_tables([other]).files == []
