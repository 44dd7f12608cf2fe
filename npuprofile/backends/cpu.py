"""The CPU backend: stock ``torch.profiler`` with CPU activity and host timing."""

from __future__ import annotations

from npuprofile.backends.base import HostTimer, Timer, TraceLayout
from npuprofile.backends.torch_profiler import TorchProfilerBackend
from npuprofile.core.deprecation import renamed

__all__ = ["CpuBackend", "TorchProfilerBackend"]


class CpuBackend(TorchProfilerBackend):
    """Profiles host-side work with ``torch.profiler`` (always available)."""

    name = "cpu"
    device = "cpu"
    layout = TraceLayout(backend="cpu", trace_globs=("*.pt.trace.json", "*.pt.trace.json.gz"))
    description = "torch.profiler, CPU activity, perf_counter timing"

    def probe(self) -> str | None:
        try:
            import torch.profiler  # noqa: F401
        except Exception as exc:  # torch itself broken: report, never raise
            return self.with_hint(f"torch.profiler cannot be imported: {exc}")
        return None

    def synchronize(self) -> None:
        """Nothing to wait for: CPU work is synchronous."""

    def timer(self) -> Timer:
        return HostTimer()


__getattr__ = renamed(__name__, {
    "CpuAdapter": (f"{__name__}.CpuBackend", CpuBackend),
    "TorchProfilerAdapter": (f"{TorchProfilerBackend.__module__}.TorchProfilerBackend", TorchProfilerBackend),
})
