"""The CPU backend: stock ``torch.profiler`` with CPU activity and host timing."""

from __future__ import annotations

import warnings
from typing import Any

from npuprofile.backends.base import HostTimer, Timer, TraceLayout
from npuprofile.backends.torch_profiler import TorchProfilerBackend

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


_DEPRECATED = {"CpuAdapter": CpuBackend, "TorchProfilerAdapter": TorchProfilerBackend}


def __getattr__(name: str) -> Any:
    if name in _DEPRECATED:
        new = _DEPRECATED[name]
        warnings.warn(
            f"{__name__}.{name} is deprecated; use {new.__module__}.{new.__name__}", DeprecationWarning, stacklevel=2
        )
        return new
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
