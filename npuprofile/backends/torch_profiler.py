"""What the backends that run the stock ``torch.profiler`` share: the profiler call and its trace.

A subclass of :class:`TorchProfilerBackend` chooses the activities (and may
add options, markers, sync and timing); :class:`TorchProfilerTrace` is one
session's ``torch.profiler.profile``, writing Chrome traces through the sink.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from npuprofile.backends.base import Backend, OpStat, Trace
from npuprofile.backends.markers import Pop, Push, range_markers

if TYPE_CHECKING:
    from npuprofile.sessions.config import Config, Schedule
    from npuprofile.sessions.files import TraceSink

__all__ = ["TorchProfilerBackend", "TorchProfilerTrace"]


class TorchProfilerTrace(Trace):
    """One session's ``torch.profiler.profile``: each trace it hands over is exported through the sink."""

    def __init__(self, sink: "TraceSink", suffix: str, markers: tuple[Push, Pop]) -> None:
        self.sink = sink
        self.suffix = suffix
        self._push, self._pop = markers
        #: The ``torch.profiler.profile`` object (set by the backend once built).
        self.profile: Any = None

    def start(self) -> None:
        self.profile.start()

    def step(self) -> None:
        self.profile.step()

    def stop(self) -> None:
        self.profile.stop()

    def push(self, name: str) -> Any:
        return self._push(name)

    def pop(self, handle: Any) -> None:
        self._pop(handle)

    def markers(self) -> tuple[Push, Pop]:
        return self._push, self._pop

    def export(self, profiler: Any) -> None:
        """The trace-ready handler: write the profiler's Chrome trace atomically through the sink."""
        self.sink.write(self.suffix, lambda tmp: profiler.export_chrome_trace(str(tmp)))

    def collect(self) -> list[Path]:
        return list(self.sink.paths)

    def op_table(self, limit: int) -> list[OpStat]:
        try:
            averages = self.profile.key_averages()
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


class TorchProfilerBackend(Backend):
    """Shared machinery of the backends that run the stock ``torch.profiler``."""

    #: The per-session trace class (a subclass may add to what a trace does at start, stop or export).
    trace_class: ClassVar[type[TorchProfilerTrace]] = TorchProfilerTrace

    def activities(self) -> list[Any]:
        """The ``torch.profiler.ProfilerActivity`` values this backend records."""
        import torch.profiler

        return [torch.profiler.ProfilerActivity.CPU]

    def profiler_kwargs(self, config: "Config", options: Any) -> dict[str, Any]:
        """Keyword arguments for ``torch.profiler.profile`` (only ones the stock profiler knows)."""
        kwargs: dict[str, Any] = {
            "activities": self.activities(),
            "record_shapes": config.record_shapes,
            "profile_memory": config.profile_memory,
            "with_stack": config.with_stack,
            "with_flops": config.with_flops,
            "with_modules": config.with_modules,
        }
        if config.schedule is not None:
            kwargs["schedule"] = self.schedule(config.schedule)
        return kwargs

    def schedule(self, schedule: "Schedule") -> Callable[[int], Any]:
        """Translate a :class:`~npuprofile.Schedule` into a ``torch.profiler.schedule``."""
        import torch.profiler

        return torch.profiler.schedule(
            wait=schedule.wait,
            warmup=schedule.warmup,
            active=schedule.active,
            repeat=schedule.repeat,
            skip_first=schedule.skip_first,
        )

    def markers(self, options: Any) -> tuple[Push, Pop]:
        """The range markers of one trace (``record_function`` ranges; override to add vendor ranges)."""
        return range_markers()

    def trace_suffix(self, gzip: bool) -> str:
        """File name ending of the traces this backend writes."""
        return ".pt.trace.json.gz" if gzip else ".pt.trace.json"

    def open_trace(self, config: "Config", options: Any, sink: "TraceSink") -> TorchProfilerTrace:
        import torch.profiler

        trace = self.trace_class(sink, self.trace_suffix(sink.gzip), self.markers(options))
        kwargs = self.profiler_kwargs(config, options)
        trace.profile = torch.profiler.profile(on_trace_ready=trace.callback("write trace", trace.export), **kwargs)
        return trace
