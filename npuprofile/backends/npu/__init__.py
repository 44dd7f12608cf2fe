"""The Ascend NPU backend: torch_npu's profiler, its options, its trace layout and offline analysis.

- ``backend``: :class:`NpuBackend` and the per-session :class:`NpuTrace`;
- ``options``: :class:`NpuOptions`, validated before anything reaches torch_npu;
- ``api``: :data:`TORCH_NPU_API`, every torch_npu name used, and importing torch_npu;
- ``layout``: torch_npu's directory and file names, and the trace layout for the analysis;
- ``offline``: ``npuprofile analyze`` (torch_npu's deferred analysis).

torch_npu is imported lazily, inside the backend, never at import time.
"""

from __future__ import annotations

from npuprofile.backends.npu.api import TORCH_NPU_API
from npuprofile.backends.npu.backend import NpuBackend, NpuTrace
from npuprofile.backends.npu.options import NpuOptions
from npuprofile.core.deprecation import renamed

__all__ = ["TORCH_NPU_API", "NpuBackend", "NpuOptions", "NpuTrace"]


__getattr__ = renamed(__name__, {"NpuAdapter": (f"{__name__}.NpuBackend", NpuBackend)})
