"""The CUDA backend: stock ``torch.profiler`` with CPU + CUDA activities, CUDA-event timing.

Only objects the stock profiler knows reach it: activities, the shared
boolean switches, a ``torch.profiler.schedule`` and our own trace handler.
Regions can also open NVTX ranges so they show in Nsight Systems.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from npuprofile.backends.base import Timer, TraceLayout
from npuprofile.backends.cpu import TorchProfilerAdapter
from npuprofile.backends.events import EventTimer
from npuprofile.errors import ConfigError
from npuprofile.sessions.config import env_name, parse_bool

#: Environment variables mirroring the fields of :class:`CudaOptions`.
ENV_NVTX = env_name("cuda_nvtx")


@dataclasses.dataclass(frozen=True)
class CudaOptions:
    """Options of the CUDA backend (``session(cuda=CudaOptions(...))`` or a dict).

    ``nvtx``: also open an NVTX range per region (``NPUPROFILE_CUDA_NVTX``).
    """

    nvtx: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.nvtx, bool):
            raise ConfigError(f"cuda nvtx={self.nvtx!r} is not a boolean; allowed: True, False")


def parse_cuda_options(value: Any, environ: Mapping[str, str]) -> CudaOptions:
    """Resolve :class:`CudaOptions`: an options object wins; dict keys win over env vars, which win over defaults."""
    if isinstance(value, CudaOptions):
        return value
    if value is not None and not isinstance(value, Mapping):
        raise ConfigError(f"cuda={value!r} is not allowed; allowed: None, a dict or npuprofile.backends.cuda.CudaOptions")
    given = dict(value or {})
    allowed = [field.name for field in dataclasses.fields(CudaOptions)]
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ConfigError(f"cuda option(s) {unknown} unknown; allowed: {', '.join(allowed)}")
    if "nvtx" in given:
        nvtx = parse_bool(given["nvtx"], "cuda nvtx")
    elif environ.get(ENV_NVTX, "").strip():
        nvtx = parse_bool(environ[ENV_NVTX], ENV_NVTX)
    else:
        nvtx = False
    return CudaOptions(nvtx=nvtx)


class _NvtxRange:
    """Handle of one region's ranges: the profiler's record_function plus an NVTX range."""

    __slots__ = ("record", "nvtx_id")

    def __init__(self, record: Any, nvtx_id: Any) -> None:
        self.record = record
        self.nvtx_id = nvtx_id


class CudaAdapter(TorchProfilerAdapter):
    """Profiles NVIDIA (or ROCm) GPUs with the stock ``torch.profiler``."""

    name = "cuda"
    layout = TraceLayout(
        backend="cuda",
        trace_globs=("*.pt.trace.json", "*.pt.trace.json.gz", "*.json", "*.json.gz"),
        device_process_patterns=(r"\bGPU\b", r"\bdevice\b"),
        communication_patterns=(r"nccl", r"rccl", r"\bsendrecv\b"),
        memory_patterns=(r"^Memcpy", r"^Memset", r"^dma"),
        sync_marker_patterns=(r"^cuda_sync$", r"^(Context|Event|Stream) Sync$"),
    )
    description = "torch.profiler, CPU + CUDA activities, CUDA-event timing, optional NVTX ranges"
    #: The ``torch.device`` type models run on with this backend.
    torch_device = "cuda"

    def __init__(self) -> None:
        self._nvtx = False

    def probe(self) -> str | None:
        import torch

        if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
            return f"torch {torch.__version__} is a build without CUDA"
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

    def parse_options(self, value: Any, environ: Mapping[str, str]) -> CudaOptions:
        return parse_cuda_options(value, environ)

    def activities(self) -> list[Any]:
        import torch.profiler

        return [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]

    def create_profiler(self, config: Any, options: Any, on_trace_ready: Any) -> Any:
        # Range markers have no options argument: remember the choice for this session.
        self._nvtx = bool(getattr(options, "nvtx", False))
        return super().create_profiler(config, options, on_trace_ready)

    def range_markers(self) -> tuple[Callable[[str], Any], Callable[[Any], None]]:
        if self._nvtx:  # the faster shared markers know nothing of NVTX
            return self.range_push, self.range_pop
        return super().range_markers()

    def range_push(self, name: str) -> Any:
        record = super().range_push(name)
        if not self._nvtx:
            return record
        import torch.cuda.nvtx

        try:
            return _NvtxRange(record, torch.cuda.nvtx.range_start(name))
        except BaseException:
            super().range_pop(record)
            raise

    def range_pop(self, handle: Any) -> None:
        if handle.__class__ is not _NvtxRange:
            super().range_pop(handle)
            return
        import torch.cuda.nvtx

        try:
            torch.cuda.nvtx.range_end(handle.nvtx_id)
        finally:
            super().range_pop(handle.record)

    def synchronize(self) -> None:
        import torch

        torch.cuda.synchronize()

    def timer(self) -> Timer:
        import torch

        return EventTimer(lambda: torch.cuda.Event(enable_timing=True))
