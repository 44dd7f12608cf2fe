"""What the backends that run the stock ``torch.profiler`` share: the profiler call and its trace.

A subclass of :class:`TorchProfilerBackend` chooses the activities (and may
add options, markers, sync and timing); :class:`TorchProfilerTrace` is one
session's ``torch.profiler.profile``, writing Chrome traces through the sink.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Sequence

from npuprofile.backends.base import MANAGED_KEYWORDS, Backend, OpStat, accepted_keywords
from npuprofile.backends.markers import Pop, Push, range_markers
from npuprofile.backends.profiler_trace import ProfilerTrace, select_activities, session_profiler_kwargs

if TYPE_CHECKING:
    from npuprofile.sessions.config import Config, Schedule
    from npuprofile.sessions.files import TraceSink

__all__ = ["TorchProfilerBackend", "TorchProfilerTrace"]


class TorchProfilerTrace(ProfilerTrace):
    """One session's ``torch.profiler.profile``: each trace it hands over is exported through the sink.

    It pauses with ``toggle_collection_dynamic`` and labels its files through
    ``add_metadata_json`` (a top-level ``"npuprofile"`` key in the Chrome trace).
    """

    can_pause = True

    def __init__(self, sink: "TraceSink", suffix: str, markers: tuple[Push, Pop],
                 activities: Sequence[Any] = ()) -> None:
        super().__init__(sink, markers)
        self.suffix = suffix
        #: The ``torch.profiler.ProfilerActivity`` values it records (what pausing turns off).
        self.activities = list(activities)
        self._uncompressed: list[Path] = []

    def pause(self) -> None:
        self.profile.toggle_collection_dynamic(False, self.activities)

    def resume(self) -> None:
        self.profile.toggle_collection_dynamic(True, self.activities)

    def label(self, facts: Mapping[str, Any]) -> None:
        self.profile.add_metadata_json("npuprofile", json.dumps(dict(facts), default=str))

    def export(self, profiler: Any) -> None:
        """The trace-ready handler: write the profiler's Chrome trace atomically through the sink.

        With a deferring sink a compressed trace is written plain first and
        compressed by :meth:`finish`.
        """
        def write(tmp: Path) -> None:
            profiler.export_chrome_trace(str(tmp))

        if self.sink.defer and self.sink.gzip and self.suffix.endswith(".gz"):
            self._uncompressed.append(self.sink.write(self.suffix[: -len(".gz")], write, compress=False))
        else:
            self.sink.write(self.suffix, write)

    def finish(self) -> None:
        """Compress the traces a deferring sink left plain."""
        from npuprofile.sessions.files import gzip_file

        while self._uncompressed:
            plain = self._uncompressed.pop(0)
            self.sink.replace(plain, gzip_file(plain))

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

    def activity_map(self) -> dict[str, list[Any]]:
        """The ``torch.profiler.ProfilerActivity`` values of each kind in :attr:`activity_kinds`."""
        import torch.profiler

        return {"cpu": [torch.profiler.ProfilerActivity.CPU]}

    def activities(self, kinds: Sequence[str] | None = None) -> list[Any]:
        """The ``torch.profiler.ProfilerActivity`` values this backend records for ``kinds`` (``None``: all)."""
        return select_activities(self.activity_map(), kinds)

    def profiler_keywords(self) -> frozenset[str] | None:
        """What ``profiler_kwargs`` may set: the keywords of ``torch.profiler.profile`` npuprofile leaves alone."""
        import torch.profiler

        accepted = accepted_keywords(torch.profiler.profile)
        return None if accepted is None else accepted - set(MANAGED_KEYWORDS)

    def profiler_kwargs(self, config: "Config", options: Any) -> dict[str, Any]:
        """Keyword arguments for ``torch.profiler.profile`` (only ones the stock profiler knows)."""
        return session_profiler_kwargs(config, self.activities(config.activities), self.schedule)

    def schedule(self, schedule: "Schedule") -> Callable[[int], Any]:
        """Translate a :class:`~npuprofile.Schedule` into a ``torch.profiler.schedule``."""
        import torch.profiler

        return torch.profiler.schedule(**schedule.to_dict())

    def markers(self, options: Any) -> tuple[Push, Pop]:
        """The range markers of one trace (``record_function`` ranges; override to add vendor ranges)."""
        return range_markers()

    def trace_suffix(self, gzip: bool) -> str:
        """File name ending of the traces this backend writes."""
        return ".pt.trace.json.gz" if gzip else ".pt.trace.json"

    def open_trace(self, config: "Config", options: Any, sink: "TraceSink") -> TorchProfilerTrace:
        import torch.profiler

        kwargs = self.profiler_kwargs(config, options)
        trace = self.trace_class(sink, self.trace_suffix(sink.gzip), self.markers(options), kwargs["activities"])
        trace.profile = torch.profiler.profile(on_trace_ready=trace.callback("write trace", trace.export), **kwargs)
        return trace
