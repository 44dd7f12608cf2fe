"""The backend protocol: a process-wide :class:`Backend` per device family, a :class:`Trace` per session.

A backend alone owns what differs between devices: which profiler runs and the
keyword arguments it gets, how traces are written, the range markers that
label regions in a trace, device synchronization, and the clock regions are
timed with. A backend object is shared by every session of the process and
keeps no session's state; what one session's profiler needs to remember lives
in the :class:`Trace` that :meth:`Backend.open_trace` makes for it.
"""

from __future__ import annotations

import abc
import dataclasses
import inspect
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

from npuprofile.backends.options import resolve_options
from npuprofile.core.deprecation import renamed
from npuprofile.core.env import env_name
from npuprofile.errors import ConfigError

if TYPE_CHECKING:
    from npuprofile.sessions.config import Config
    from npuprofile.sessions.files import TraceSink

__all__ = [
    "ACTIVITY_KINDS", "Backend", "HostTimer", "MemoryHistory", "OpStat", "Timer", "Trace", "TraceLayout",
    "accepted_keywords",
]

#: What ``activities=`` may name: host work and device work; each backend maps them to its profiler's own.
ACTIVITY_KINDS = ("cpu", "device")

#: Profiler keywords npuprofile sets from its own options, and the option to use instead.
MANAGED_KEYWORDS: dict[str, str] = {
    "activities": "activities=",
    "schedule": "schedule= (or a Controller's step windows)",
    "on_trace_ready": "output_dir= (npuprofile writes the traces)",
    "record_shapes": "record_shapes=",
    "profile_memory": "profile_memory=",
    "with_stack": "with_stack=",
    "with_flops": "with_flops=",
    "with_modules": "with_modules=",
}


def accepted_keywords(callable_: Any) -> frozenset[str] | None:
    """Keyword names a callable accepts (``None`` when it takes ``**kwargs``)."""
    params = inspect.signature(callable_).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params if p.kind is not inspect.Parameter.POSITIONAL_ONLY and p.name != "self")


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


class MemoryHistory(abc.ABC):
    """A device allocator's history of allocations and frees, recorded for one session.

    The session calls :meth:`start` once its profiler runs, :meth:`snapshot` at
    its end (on the thread that ran the work) and :meth:`stop` after that; the
    snapshot is pickled into ``<stem>.memory-snapshot.pickle`` (readable by
    PyTorch's memory viewer).
    """

    @abc.abstractmethod
    def start(self) -> None:
        """Begin recording the allocator's history."""

    @abc.abstractmethod
    def snapshot(self) -> Any:
        """The allocator's state and recorded history now (a picklable object)."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop recording (the history kept so far is released)."""


class Trace(abc.ABC):
    """One session's profiler, from :meth:`start` to :meth:`collect`.

    Made by :meth:`Backend.open_trace` (built, not started) and used by one
    session only, so everything that session's profiler needs to remember (the
    profiler object, which markers it sends, the files that existed before)
    lives here and nowhere else.

    The session calls :meth:`start`, then :meth:`step` at each step end and
    the range markers per region, then :meth:`stop`, :meth:`collect` and
    :meth:`op_table`. A failure may raise: the session decides whether it
    degrades or reaches the user.
    """

    #: Where failures of callbacks the profiler runs on its own (such as the
    #: trace-ready handler) are reported, as ``on_error(action, exception)``;
    #: the session sets it. ``None`` lets them propagate.
    on_error: Callable[[str, BaseException], None] | None = None
    #: Whether :meth:`pause` and :meth:`resume` can stop and restart recording without ending the trace.
    can_pause: bool = False

    @abc.abstractmethod
    def start(self) -> None:
        """Start the profiler."""

    @abc.abstractmethod
    def step(self) -> None:
        """Mark the end of one step (advances the profiler's schedule)."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop the profiler; traces still pending are written now."""

    def writes_at_stop(self) -> bool:
        """Whether :meth:`stop` may still write a trace (default: yes).

        ``False`` lets the session skip what only guards that last export (a
        summary kept in memory for a watchdog), for example once a schedule
        has run all its cycles.
        """
        return True

    @abc.abstractmethod
    def push(self, name: str) -> Any:
        """Open a named range in the trace; return a handle for :meth:`pop`."""

    @abc.abstractmethod
    def pop(self, handle: Any) -> None:
        """Close the range ``handle`` opened."""

    def markers(self) -> tuple[Callable[[str], Any], Callable[[Any], None]]:
        """The ``(push, pop)`` pair the session calls per region (override to hand out faster callables)."""
        return self.push, self.pop

    @abc.abstractmethod
    def collect(self) -> list[Path]:
        """After :meth:`stop`: every trace file (or directory) this trace wrote, each recorded in its sink."""

    def op_table(self, limit: int) -> list[OpStat]:
        """Top operators by self time, after :meth:`stop`, when the profiler can tell (default: none)."""
        return []

    def pause(self) -> None:
        """Stop recording events until :meth:`resume`; the trace goes on (only when :attr:`can_pause`)."""
        raise NotImplementedError(f"{type(self).__name__} cannot pause")

    def resume(self) -> None:
        """Record events again after :meth:`pause`."""
        raise NotImplementedError(f"{type(self).__name__} cannot pause")

    def label(self, facts: Mapping[str, Any]) -> None:
        """While running: write ``facts`` (run id, rank, coordinates, stage) into the trace file, if its format allows."""

    def finish(self) -> None:
        """After :meth:`stop`: the slow work on what was written (compression, analysis), which may run on another thread.

        What a trace defers here depends on its sink (:attr:`TraceSink.defer
        <npuprofile.sessions.files.TraceSink.defer>`); without deferral the
        work was done at :meth:`stop` and this does nothing.
        """

    def callback(self, action: str, function: Callable[[Any], None]) -> Callable[[Any], None]:
        """Wrap a callback the profiler runs on its own, so that its failure goes to :attr:`on_error`."""

        def run(argument: Any) -> None:
            try:
                function(argument)
            except Exception as exc:
                report = self.on_error
                if report is None:
                    raise
                report(action, exc)

        return run


class Backend(abc.ABC):
    """A device family and the profiler that goes with it; one object per process, shared by sessions.

    Subclasses set :attr:`name`, :attr:`description`, :attr:`device` and
    :attr:`layout`, and implement :meth:`probe`, :meth:`timer`,
    :meth:`synchronize` and :meth:`open_trace`. Options of their own are a
    frozen dataclass named by :attr:`options_class` (parsed by
    :func:`npuprofile.backends.options.resolve_options`). Creating a backend
    must be cheap and must not import optional device libraries (do that in
    :meth:`probe`).
    """

    #: Registry name, also the ``session()`` keyword that carries this backend's options.
    name: str = ""
    #: One line for ``npuprofile backends``.
    description: str = ""
    #: The ``torch.device`` type models run on with this backend.
    device: str = "cpu"
    #: What this backend's traces look like (for the analysis; read without probing the device).
    layout: TraceLayout = TraceLayout(backend="")
    #: The frozen dataclass of this backend's own options, or ``None`` when it takes none.
    options_class: ClassVar[type[Any] | None] = None
    #: What to install when this backend is unavailable (the registry entry's hint replaces it).
    install_hint: str = ""
    #: What this backend's profiler can record, among ``"cpu"`` and ``"device"`` (``activities=``).
    activity_kinds: ClassVar[tuple[str, ...]] = ("cpu",)

    # -- availability ---------------------------------------------------------------
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

    def with_hint(self, reason: str) -> str:
        """``reason`` followed by the install hint, when there is one."""
        return f"{reason} ({self.install_hint})" if self.install_hint else reason

    def versions(self) -> dict[str, str]:
        """Versions of the libraries this backend uses (for reports and ``npuprofile backends``)."""
        import torch

        return {"torch": str(torch.__version__)}

    # -- options --------------------------------------------------------------------------
    def options(self, value: Any, environ: Mapping[str, str]) -> Any:
        """Parse and validate this backend's options: the ``session(<name>=...)`` value plus its env vars.

        ``value`` is ``None``, a dict or an :attr:`options_class` instance;
        variables are ``NPUPROFILE_<NAME>_<FIELD>``. A backend without options
        accepts only ``None``.
        """
        if self.options_class is None:
            if value is not None:
                raise ConfigError(f"{self.name}={value!r}: the {self.name!r} backend takes no options; allowed: None")
            return None
        return resolve_options(self.options_class, value, environ, env_name(self.name + "_"), name=self.name)

    def validate(self, config: "Config", options: Any) -> None:
        """Check the session options against this backend before anything starts.

        Raise :class:`~npuprofile.errors.ConfigError` for a combination this
        backend cannot honour (the default accepts everything).
        """

    def check(self, config: "Config", options: Any) -> None:
        """Everything session creation checks: ``activities`` and ``profiler_kwargs`` here, then :meth:`validate`."""
        if config.activities is not None:
            missing = [kind for kind in config.activities if kind not in self.activity_kinds]
            if missing:
                raise ConfigError(
                    f"activities={config.activities!r}: the {self.name!r} backend cannot record {missing}; "
                    f"allowed: a non-empty selection of {self.activity_kinds!r}"
                )
        if config.profiler_kwargs:
            self._check_profiler_kwargs(config.profiler_kwargs)
        self.validate(config, options)

    def profiler_keywords(self) -> frozenset[str] | None:
        """Keywords of this backend's profiler that ``profiler_kwargs`` may set (``None``: any; default: none)."""
        return frozenset()

    def _check_profiler_kwargs(self, given: Mapping[str, Any]) -> None:
        allowed = self.profiler_keywords()
        managed = sorted(key for key in given if key in MANAGED_KEYWORDS)
        unknown = sorted(key for key in given if key not in MANAGED_KEYWORDS and allowed is not None
                         and key not in allowed)
        if not managed and not unknown:
            return
        listed = ", ".join(sorted(allowed)) if allowed else "none"
        parts = []
        if unknown:
            parts.append(f"{unknown} not accepted by the {self.name!r} backend's profiler")
        if managed:
            parts.append(f"{managed} set by npuprofile (use {', '.join(MANAGED_KEYWORDS[k] for k in managed)})")
        raise ConfigError(f"profiler_kwargs: {'; '.join(parts)}; allowed: {listed}")

    def memory_history(self) -> MemoryHistory | None:
        """The allocator history ``memory_snapshot=True`` records, or ``None`` when this device keeps none."""
        return None

    def options_to_dict(self, options: Any) -> dict[str, Any]:
        """JSON-ready view of parsed options, for summaries and reports."""
        if options is None:
            return {}
        if dataclasses.is_dataclass(options):
            return dataclasses.asdict(options)  # type: ignore[arg-type]
        return dict(options)

    # -- timing and sync --------------------------------------------------------------------
    @abc.abstractmethod
    def timer(self) -> Timer:
        """A fresh clock for timing regions."""

    @abc.abstractmethod
    def synchronize(self) -> None:
        """Wait for all work queued on the device."""

    # -- tracing -------------------------------------------------------------------------------
    @abc.abstractmethod
    def open_trace(self, config: "Config", options: Any, sink: "TraceSink") -> Trace:
        """Build (not start) one session's profiler, writing its traces through ``sink``."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


__getattr__ = renamed(__name__, {"Adapter": (f"{__name__}.Backend", Backend)})
