"""The Ascend NPU backend: torch_npu's profiler, its options, its trace layout and offline analysis.

torch_npu is imported lazily, inside the backend, never at import time.
"""

from __future__ import annotations

from npuprofile.backends.npu.adapter import TORCH_NPU_API, NpuAdapter
from npuprofile.backends.npu.options import NpuOptions

__all__ = ["TORCH_NPU_API", "NpuAdapter", "NpuOptions"]
