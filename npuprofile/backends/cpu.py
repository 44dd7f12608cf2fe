"""The CPU backend: stock ``torch.profiler`` with CPU activity and host timing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from npuprofile.backends.base import Adapter, HostTimer, OpStat, Timer, TraceLayout

if TYPE_CHECKING:
    from npuprofile.sessions.config import Config
    from npuprofile.sessions.files import TraceSink


class _UserAnnotation:
    """Opens and closes ``record_function`` ranges through torch's profiler ops directly.

    The ops are what ``torch.autograd.profiler.record_function`` calls, minus its
    per-use object and checks, and with ``__torch_function__`` handling off
    around both calls: the ranges land in the trace as the same
    ``user_annotation`` events at about half the cost.
    """

    def __init__(self) -> None:
        import torch

        self._enter = torch.ops.profiler._record_function_enter_new.default
        self._exit = torch.ops.profiler._record_function_exit._RecordFunction
        self._plain = torch._C.DisableTorchFunctionSubclass

    def push(self, name: str) -> Any:
        with self._plain():
            return self._enter(name, None)

    def pop(self, handle: Any) -> None:
        with self._plain():
            self._exit(handle)


class TorchProfilerAdapter(Adapter):
    """Shared machinery of the backends that run the stock ``torch.profiler``.

    Subclasses choose the activities (and may add markers, sync and timing).
    """

    def activities(self) -> list[Any]:
        """The ``torch.profiler.ProfilerActivity`` values this backend records."""
        import torch.profiler

        return [torch.profiler.ProfilerActivity.CPU]

    def profiler_kwargs(self, config: "Config", options: Any) -> dict[str, Any]:
        """Keyword arguments for ``torch.profiler.profile`` (only ones the stock profiler knows)."""
        return {
            "activities": self.activities(),
            "record_shapes": config.record_shapes,
            "profile_memory": config.profile_memory,
            "with_stack": config.with_stack,
            "with_flops": config.with_flops,
            "with_modules": config.with_modules,
        }

    def create_profiler(
        self, config: "Config", options: Any, on_trace_ready: Callable[[Any], None] | None
    ) -> Any:
        import torch.profiler

        kwargs = self.profiler_kwargs(config, options)
        if config.schedule is not None:
            kwargs["schedule"] = self.schedule(config.schedule)
        return torch.profiler.profile(on_trace_ready=on_trace_ready, **kwargs)

    def trace_handler(self, sink: "TraceSink", options: Any) -> Callable[[Any], None]:
        suffix = self.trace_suffix(sink.gzip)

        def write_trace(profiler: Any) -> None:
            sink.write(suffix, lambda tmp: profiler.export_chrome_trace(str(tmp)))

        return write_trace

    def op_table(self, profiler: Any, limit: int) -> list[OpStat]:
        try:
            averages = profiler.key_averages()
        except (AssertionError, RuntimeError, AttributeError):
            return []  # nothing recorded (e.g. the schedule never reached an active step)
        rows = [
            OpStat(
                name=event.key,
                count=int(event.count),
                self_host_ns=int(event.self_cpu_time_total * 1000),
                total_host_ns=int(event.cpu_time_total * 1000),
                self_device_ns=int(getattr(event, "self_device_time_total", 0) * 1000),
                total_device_ns=int(getattr(event, "device_time_total", 0) * 1000),
            )
            for event in averages
            if not event.key.startswith("ProfilerStep")
        ]
        rows.sort(key=lambda row: (row.self_device_ns + row.self_host_ns), reverse=True)
        return rows[:limit]

    def range_push(self, name: str) -> Any:
        return self._annotation().push(name)

    def range_pop(self, handle: Any) -> None:
        self._annotation().pop(handle)

    def range_markers(self) -> tuple[Callable[[str], Any], Callable[[Any], None]]:
        annotation = self._annotation()
        return annotation.push, annotation.pop

    def _annotation(self) -> _UserAnnotation:
        annotation = self.__dict__.get("_user_annotation")
        if annotation is None:
            annotation = self.__dict__["_user_annotation"] = _UserAnnotation()
        return annotation


class CpuAdapter(TorchProfilerAdapter):
    """Profiles host-side work with ``torch.profiler`` (always available)."""

    name = "cpu"
    layout = TraceLayout(backend="cpu", trace_globs=("*.pt.trace.json", "*.pt.trace.json.gz"))
    description = "torch.profiler, CPU activity, perf_counter timing"

    def probe(self) -> str | None:
        try:
            import torch.profiler  # noqa: F401
        except Exception as exc:  # torch itself broken: report, never raise
            return f"torch.profiler cannot be imported: {exc}"
        return None

    def synchronize(self) -> None:
        """Nothing to wait for: CPU work is synchronous."""

    def timer(self) -> Timer:
        return HostTimer()
