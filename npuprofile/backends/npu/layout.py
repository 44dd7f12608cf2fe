"""How torch_npu lays out what it writes: profiling directories, analysed output, trace lanes.

The analysis reads NPU traces through :data:`LAYOUT` (via
:func:`npuprofile.backends.trace_layouts`); the backend and the offline
analysis use the names below. Nothing here imports torch_npu.
"""

from __future__ import annotations

from npuprofile.backends.base import TraceLayout

__all__ = ["DIR_SUFFIX", "LAYOUT", "MAX_WORKER_NAME", "OUTPUT_DIR", "TRACE_VIEW"]

#: Suffix torch_npu gives each profiling directory (``<worker>_<pid>_<time>_ascend_pt``).
DIR_SUFFIX = "_ascend_pt"
#: Sub-directory of a profiling directory holding the analysed output, and the Chrome trace inside it.
OUTPUT_DIR = "ASCEND_PROFILER_OUTPUT"
TRACE_VIEW = "trace_view.json"
#: torch_npu resets worker names this long or longer to the host name.
MAX_WORKER_NAME = 226

LAYOUT = TraceLayout(
    backend="npu",
    trace_globs=(f"{OUTPUT_DIR}/{TRACE_VIEW}",),
    device_process_patterns=(r"Ascend Hardware", r"\bHCCL\b", r"\bNPU\b"),
    communication_patterns=(r"hcom", r"hccl", r"\bsend\b", r"\breceive\b", r"\brecv\b"),
    host_process_groups=(("Python", "CANN"),),
    overlap_process_pattern=r"Overlap Analysis",
    rank_file_glob="profiler_info_*.json",
    memory_patterns=(r"^MEMCPY", r"^MEMSET"),
    overlap_threads=(
        ("Computing", "compute"),
        ("Communication", "communication"),
        ("Communication(Not Overlapped)", "communication_not_overlapped"),
        ("Free", "idle"),
    ),
    table_globs=("kernel_details*.csv", "op_statistic*.csv", "step_trace_time*.csv"),
    table_reader="npuprofile.backends.npu.tables:read_tables",
)
