"""Constants and the warning printer of the fake (torch_npu prints warnings to stdout)."""

import os
import time

from torch_npu import _fake


class Constant:
    LEVEL0 = "Level0"
    LEVEL1 = "Level1"
    LEVEL2 = "Level2"
    LEVEL_NONE = "Level_none"
    AicPipeUtilization = "ACL_AICORE_PIPE_UTILIZATION"
    AicArithmeticUtilization = "ACL_AICORE_ARITHMETIC_UTILIZATION"
    AicMemory = "ACL_AICORE_MEMORY_BANDWIDTH"
    AicMemoryL0 = "ACL_AICORE_L0B_AND_WIDTH"
    AicMemoryUB = "ACL_AICORE_MEMORY_UB"
    AicResourceConflictRatio = "ACL_AICORE_RESOURCE_CONFLICT_RATIO"
    AicL2Cache = "ACL_AICORE_L2_CACHE"
    AicMemoryAccess = "ACL_AICORE_MEMORY_ACCESS"
    AicMetricsNone = "ACL_AICORE_NONE"
    Db = "db"
    Text = "text"
    OUTPUT_DIR = "ASCEND_PROFILER_OUTPUT"
    TRACE_VIEW = "trace_view.json"
    MAX_WORKER_NAME_LENGTH = 226
    DEFAULT_PROCESS_NUMBER = max(1, (os.cpu_count() or 2) // 2)


def print_warn_msg(message):
    _fake.warnings_printed.append(message)
    stamp = time.strftime("[%Y-%m-%d %H:%M:%S]", time.localtime())
    print(f"{stamp} [WARNING] [{os.getpid()}] profiler.py: {message}", flush=True)
