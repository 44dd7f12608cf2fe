"""The CUDA backend: stock ``torch.profiler`` with CPU + CUDA activities, CUDA-event timing.

Only objects the stock profiler knows reach it: activities, the shared
boolean switches, a ``torch.profiler.schedule`` and our own trace handler.
Regions can also open NVTX ranges so they show in Nsight Systems.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from npuprofile.backends.base import MemoryHistory, Timer, TraceLayout
from npuprofile.backends.events import EventTimer
from npuprofile.backends.markers import Pop, Push, range_markers
from npuprofile.backends.memory import AllocatorHistory
from npuprofile.backends.options import normalize_options
from npuprofile.backends.torch_profiler import TorchProfilerBackend
from npuprofile.core.deprecation import renamed
from npuprofile.core.env import env_name

__all__ = ["ENV_NVTX", "CudaBackend", "CudaOptions"]

#: The environment variable mirroring :attr:`CudaOptions.nvtx`.
ENV_NVTX = env_name("cuda_nvtx")


@dataclasses.dataclass(frozen=True)
class CudaOptions:
    """Options of the CUDA backend (``session(cuda=CudaOptions(...))``, a dict, or ``NPUPROFILE_CUDA_*``).

    ``nvtx``: also open an NVTX range per region (``NPUPROFILE_CUDA_NVTX``).
    """

    nvtx: bool = False

    def __post_init__(self) -> None:
        normalize_options(self, "cuda")


class CudaBackend(TorchProfilerBackend):
    """Profiles NVIDIA (or ROCm) GPUs with the stock ``torch.profiler``."""

    name = "cuda"
    device = "cuda"
    layout = TraceLayout(
        backend="cuda",
        trace_globs=("*.pt.trace.json", "*.pt.trace.json.gz", "*.json", "*.json.gz"),
        device_process_patterns=(r"\bGPU\b", r"\bdevice\b"),
        communication_patterns=(r"nccl", r"rccl", r"\bsendrecv\b"),
        memory_patterns=(r"^Memcpy", r"^Memset", r"^dma"),
        sync_marker_patterns=(r"^cuda_sync$", r"^(Context|Event|Stream) Sync$"),
    )
    description = "torch.profiler, CPU + CUDA activities, CUDA-event timing, optional NVTX ranges"
    options_class = CudaOptions

    def probe(self) -> str | None:
        import torch

        if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
            return self.with_hint(f"torch {torch.__version__} is a build without CUDA")
        if not torch.cuda.is_available():
            return "torch.cuda.is_available() is False (no visible CUDA device or driver)"
        return None

    def versions(self) -> dict[str, str]:
        import torch

        out = {"torch": str(torch.__version__)}
        if torch.version.cuda is not None:
            out["cuda"] = str(torch.version.cuda)
        if self.is_available():
            out["device"] = torch.cuda.get_device_name()
        return out

    activity_kinds = ("cpu", "device")

    def activity_map(self) -> dict[str, list[Any]]:
        import torch.profiler

        return {"cpu": [torch.profiler.ProfilerActivity.CPU], "device": [torch.profiler.ProfilerActivity.CUDA]}

    def memory_history(self) -> MemoryHistory:
        import torch.cuda.memory

        return AllocatorHistory(torch.cuda.memory)

    def markers(self, options: CudaOptions) -> tuple[Push, Pop]:
        if not options.nvtx:
            return range_markers()
        import torch.cuda.nvtx

        return range_markers(torch.cuda.nvtx.range_start, torch.cuda.nvtx.range_end)

    def synchronize(self) -> None:
        import torch

        torch.cuda.synchronize()

    def timer(self) -> Timer:
        import torch

        return EventTimer(lambda: torch.cuda.Event(enable_timing=True))  # type: ignore[no-untyped-call]


__getattr__ = renamed(__name__, {"CudaAdapter": (f"{__name__}.CudaBackend", CudaBackend)})
