"""The protocol every backend adapter implements.

An adapter alone owns what differs between devices: which profiler class runs,
the keyword arguments it gets, how traces are written, the range markers that
label regions in a trace, device synchronization, and the clock regions are
timed with. Core code calls these methods and never asks which backend it has.
"""

from __future__ import annotations

import abc
import dataclasses
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:
    from npuprofile.sessions.config import Config, Schedule
    from npuprofile.sessions.files import TraceSink


@dataclasses.dataclass(frozen=True)
class OpStat:
    """One row of a top-ops table: an operator and its time, in nanoseconds."""

    name: str
    count: int
    self_host_ns: int
    total_host_ns: int
    self_device_ns: int = 0
    total_device_ns: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return dataclasses.asdict(self)


class Timer(abc.ABC):
    """The clock regions are timed with.

    ``mark()`` is on the hot path: it returns an opaque mark (an ``int`` of
    nanoseconds for host clocks, an event for device clocks). ``elapsed_ns``
    turns two marks into nanoseconds once ``flush()`` has made them readable.
    """

    #: True when marks are host ``perf_counter_ns`` integers.
    host_clock: bool = True

    @abc.abstractmethod
    def mark(self) -> Any:
        """Take a mark now (cheap; no device synchronization)."""

    def elapsed_ns(self, start: Any, end: Any) -> int:
        """Nanoseconds between two marks."""
        return int(end - start)

    def flush(self) -> None:
        """Make every mark taken so far readable by ``elapsed_ns`` (at most one device sync)."""


class HostTimer(Timer):
    """``time.perf_counter_ns``: honest for work that runs on the host."""

    host_clock = True

    def __init__(self) -> None:
        self.mark = time.perf_counter_ns  # type: ignore[method-assign]

    def mark(self) -> Any:  # pragma: no cover - replaced per instance by the C function
        return time.perf_counter_ns()


@dataclasses.dataclass(frozen=True)
class TraceLayout:
    """How a backend's traces look, on disk and inside: what the analysis needs to read them.

    The analysis never names a device library or lane itself; it asks every
    registered backend for its layout (:func:`npuprofile.backends.trace_layouts`).
    Patterns are regular expressions, matched case-insensitively with ``re.search``.
    """

    #: Registry name of the backend that writes these traces.
    backend: str
    #: Glob patterns, relative to a directory searched recursively, of the trace files this backend writes.
    trace_globs: tuple[str, ...] = ()
    #: Process names (``process_name`` / ``process_labels`` metadata) whose threads are device lanes.
    device_process_patterns: tuple[str, ...] = ()
    #: Names of device activities that are communication (collectives, send/recv).
    communication_patterns: tuple[str, ...] = ()
    #: Groups of host process names whose threads are the same OS threads (nest them together).
    host_process_groups: tuple[tuple[str, ...], ...] = ()
    #: Process name of a lane in which the trace states its own overlap analysis, if it has one.
    overlap_process_pattern: str | None = None
    #: Glob of a file beside the trace that names its rank (a JSON object with a ``rank_id`` key).
    rank_file_glob: str | None = None
    #: Names of device activities that copy or set memory (besides torch's memcpy/memset categories).
    memory_patterns: tuple[str, ...] = ()
    #: Categories or names of device-lane events that mark a synchronization, not work.
    sync_marker_patterns: tuple[str, ...] = ()
    #: Thread names of the overlap lane and the figure each states: ``compute``, ``communication``,
    #: ``communication_not_overlapped`` or ``idle``.
    overlap_threads: tuple[tuple[str, str], ...] = ()
    #: Glob patterns (searched recursively) of the tables this backend's own tools write beside traces.
    table_globs: tuple[str, ...] = ()
    #: ``"module:function"`` that reads those tables: it takes a list of paths and returns a
    #: :class:`npuprofile.backends.tables.DeviceTables`.
    table_reader: str | None = None


class Adapter(abc.ABC):
    """A backend: one device family and the profiler that goes with it.

    Subclasses set :attr:`name` and implement the abstract methods. Adapters are
    created by the registry's factories; creating one must be cheap and must not
    import optional device libraries (do that in :meth:`probe`).
    """

    #: Registry name, also the keyword that carries this adapter's own options on ``session()``.
    name: str = ""
    #: One line for ``npuprofile backends``.
    description: str = ""
    #: What this backend's traces look like (for the analysis; read without probing the device).
    layout: TraceLayout = TraceLayout(backend="")

    # -- availability -------------------------------------------------------
    @abc.abstractmethod
    def probe(self) -> str | None:
        """Check the device and libraries; return ``None`` when usable, else the reason it is not."""

    def is_available(self) -> bool:
        """Whether this backend can run here (the probe runs once and is remembered)."""
        return self.unavailable_reason() is None

    def unavailable_reason(self) -> str | None:
        """Why this backend cannot run here, or ``None``."""
        if not hasattr(self, "_probe_result"):
            try:
                self._probe_result = self.probe()
            except Exception as exc:  # a probe must never break the caller
                self._probe_result = f"probe failed: {type(exc).__name__}: {exc}"
        return self._probe_result

    def versions(self) -> dict[str, str]:
        """Versions of the libraries this backend uses (for reports and ``npuprofile backends``)."""
        import torch

        return {"torch": str(torch.__version__)}

    # -- options --------------------------------------------------------------
    def parse_options(self, value: Any, environ: Mapping[str, str]) -> Any:
        """Parse this adapter's own options (the ``session(<name>=...)`` keyword plus its env vars).

        Adapters with no options of their own accept only ``None``.
        """
        from npuprofile.errors import ConfigError

        if value is not None:
            raise ConfigError(f"{self.name}={value!r}: the {self.name!r} backend takes no options; allowed: None")
        return None

    def validate(self, config: "Config", options: Any) -> None:
        """Check the session options against this backend before anything starts.

        Raise :class:`~npuprofile.errors.ConfigError` for a combination this
        backend cannot honour (the default accepts everything).
        """

    def options_to_dict(self, options: Any) -> dict[str, Any]:
        """JSON-ready view of parsed options, for summaries and reports."""
        if options is None:
            return {}
        if dataclasses.is_dataclass(options):
            return dataclasses.asdict(options)  # type: ignore[arg-type]
        return dict(options)

    # -- tracing profiler ---------------------------------------------------------
    @abc.abstractmethod
    def create_profiler(
        self,
        config: "Config",
        options: Any,
        on_trace_ready: Callable[[Any], None] | None,
    ) -> Any:
        """Build (not start) the backend profiler for a tracing session.

        The returned object has ``start()``, ``stop()`` and ``step()``.
        """

    @abc.abstractmethod
    def trace_handler(self, sink: "TraceSink", options: Any) -> Callable[[Any], None]:
        """The ``on_trace_ready`` callback that writes one trace through ``sink``."""

    def collect_traces(self, sink: "TraceSink", options: Any) -> None:
        """After the profiler stopped: report traces written outside the handler (optional)."""

    def op_table(self, profiler: Any, limit: int) -> list[OpStat]:
        """Top operators by self time from a stopped profiler, when the backend can tell."""
        return []

    # -- markers, sync, timing --------------------------------------------------------
    @abc.abstractmethod
    def range_push(self, name: str) -> Any:
        """Open a named range in the trace; return a handle for :meth:`range_pop`."""

    @abc.abstractmethod
    def range_pop(self, handle: Any) -> None:
        """Close the range ``handle`` opened."""

    def range_markers(self) -> tuple[Callable[[str], Any], Callable[[Any], None]]:
        """The ``(push, pop)`` pair a tracing session calls per region (override to hand out faster callables)."""
        return self.range_push, self.range_pop

    @abc.abstractmethod
    def synchronize(self) -> None:
        """Wait for all work queued on the device."""

    @abc.abstractmethod
    def timer(self) -> Timer:
        """A fresh clock for timing regions."""

    def schedule(self, schedule: "Schedule") -> Any:
        """Translate a :class:`~npuprofile.Schedule` into the backend profiler's schedule."""
        import torch.profiler

        return torch.profiler.schedule(
            wait=schedule.wait,
            warmup=schedule.warmup,
            active=schedule.active,
            repeat=schedule.repeat,
            skip_first=schedule.skip_first,
        )

    def trace_suffix(self, gzip: bool) -> str:
        """File name ending of the traces this backend writes."""
        return ".pt.trace.json.gz" if gzip else ".pt.trace.json"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
