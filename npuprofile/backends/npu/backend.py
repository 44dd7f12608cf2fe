"""The Ascend NPU backend: ``torch_npu.profiler`` with CPU + NPU activities, NPU-event timing.

torch_npu is imported lazily (:func:`~npuprofile.backends.npu.api.import_torch_npu`),
and any failure of that import only makes the backend unavailable, with the
reason kept. Only torch_npu's own objects reach ``torch_npu.profiler.profile``:
its ``_ExperimentalConfig``, its trace handler, its schedule. Options are
validated by :class:`NpuOptions` and checked against the installed torch_npu
(:meth:`NpuBackend.validate`) before anything starts.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection

from npuprofile.backends.base import MANAGED_KEYWORDS, Backend, MemoryHistory, Timer, accepted_keywords
from npuprofile.backends.events import EventTimer
from npuprofile.backends.markers import Pop, Push, range_markers
from npuprofile.backends.memory import AllocatorHistory
from npuprofile.backends.npu.api import INSTALL_HINT, import_torch_npu
from npuprofile.backends.npu.layout import DIR_SUFFIX, LAYOUT, MAX_WORKER_NAME
from npuprofile.backends.npu.offline import analysed_outputs, analyze_traces
from npuprofile.backends.npu.options import NpuOptions
from npuprofile.backends.profiler_trace import ProfilerTrace, select_activities, session_profiler_kwargs
from npuprofile.errors import BackendError, BackendUnavailableError, ConfigError

if TYPE_CHECKING:
    from npuprofile.sessions.config import Config, Schedule
    from npuprofile.sessions.files import TraceSink

__all__ = ["NpuBackend", "NpuOptions", "NpuTrace", "accepted_keywords", "experimental_kwargs"]

logger = logging.getLogger("npuprofile")


# -- checking options against the installed torch_npu ---------------------------------------------


def experimental_kwargs(
    options: NpuOptions,
    accepted: Collection[str] | None = None,
    *,
    version: str = "installed",
    on_drop: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``_ExperimentalConfig`` from ``options``.

    ``accepted`` is the set of keywords the installed ``_ExperimentalConfig``
    takes (``None``: take every keyword). A keyword it lacks raises
    :class:`ConfigError` naming it when ``options.strict_options``; otherwise it
    is dropped and ``on_drop`` (default: one logged warning) is told why.
    """
    kwargs: dict[str, Any] = {
        "profiler_level": options.profiler_level,
        "aic_metrics": options.aic_metrics,
        "l2_cache": options.l2_cache,
        "msprof_tx": options.msprof_tx,
        "data_simplification": options.data_simplification,
        "record_op_args": options.record_op_args,
        "op_attr": options.op_attr,
        "gc_detect_threshold": options.gc_detect_threshold,
        "export_type": options.export_type[0] if len(options.export_type) == 1 else list(options.export_type),
    }
    if options.mstx:
        kwargs["mstx"] = True
    if accepted is None:
        return kwargs
    missing = [name for name in kwargs if name not in accepted]
    if not missing:
        return kwargs
    hint = " (use msprof_tx=True there)" if "mstx" in missing and "msprof_tx" in accepted else ""
    message = (
        f"npu option(s) {missing} not supported by torch_npu {version}{hint}; "
        f"its _ExperimentalConfig accepts: {', '.join(sorted(accepted))}"
    )
    if options.strict_options:
        raise ConfigError(message + "; pass strict_options=False to drop them with a warning")
    (on_drop or (lambda text: logger.warning("npuprofile: %s; dropped", text)))(message)
    return {name: value for name, value in kwargs.items() if name not in missing}


def _check_supported(options: NpuOptions, profiler: Any, version: str) -> None:
    """Refuse values the installed torch_npu would reset (older releases lack some metrics)."""
    checks = (
        ("profiler_level", (options.profiler_level,), "supported_profiler_level"),
        ("aic_metrics", (options.aic_metrics,), "supported_ai_core_metrics"),
        ("export_type", options.export_type, "supported_export_type"),
    )
    for name, values, function in checks:
        supported = {str(item) for item in getattr(profiler, function)()}
        for value in values:
            if value not in supported:
                raise ConfigError(
                    f"npu {name}={value!r} is not supported by torch_npu {version}; "
                    f"allowed there: {', '.join(sorted(supported))}"
                )


# -- one session's profiler ------------------------------------------------------------------------


def _worker_name(sink: "TraceSink") -> str:
    """The worker name torch_npu puts first in directory names: our stem, which carries the rank."""
    return sink.stem[: MAX_WORKER_NAME - 1]


def _profiling_dirs(sink: "TraceSink") -> list[Path]:
    """The profiling directories of this sink's writer in its output directory."""
    pattern = f"{_worker_name(sink)}_*{DIR_SUFFIX}"
    return sorted(path for path in sink.directory.glob(pattern) if path.is_dir())


class NpuTrace(ProfilerTrace):
    """One session's ``torch_npu.profiler.profile``; torch_npu's own handler writes profiling directories.

    torch_npu's profiler cannot pause. With a deferring sink the handler only
    writes raw data and :meth:`finish` runs torch_npu's analysis.
    """

    def __init__(self, sink: "TraceSink", markers: tuple[Push, Pop], analyse_later: bool = False) -> None:
        super().__init__(sink, markers)
        # Directories of earlier sessions with the same stem are not this trace's.
        self.before = frozenset(_profiling_dirs(sink))
        #: Whether :meth:`finish` analyses the raw data (the handler was told not to).
        self.analyse_later = analyse_later

    def collect(self) -> list[Path]:
        """Record the profiling directories this trace produced, and the analysed traces inside."""
        for directory in _profiling_dirs(self.sink):
            if directory in self.before:
                continue
            self.sink.add(directory)
            for output in analysed_outputs(directory):
                self.sink.add(output)
        return list(self.sink.paths)

    def finish(self) -> None:
        """Run torch_npu's analysis on the raw data of each new profiling directory (when it was deferred)."""
        if not self.analyse_later:
            return
        for directory in _profiling_dirs(self.sink):
            if directory not in self.before and not analysed_outputs(directory):
                analyze_traces(directory)

    # op_table: torch_npu's profiler has no key_averages(); op statistics come from the analysed trace.


class NpuBackend(Backend):
    """Profiles Huawei Ascend NPUs with ``torch_npu.profiler``."""

    name = "npu"
    device = "npu"
    layout = LAYOUT
    description = "torch_npu.profiler, CPU + NPU activities, experimental config, NPU-event timing"
    options_class = NpuOptions
    install_hint = INSTALL_HINT
    activity_kinds = ("cpu", "device")

    def __init__(self) -> None:
        self._module: Any = None
        self._warned: set[str] = set()  # lenient option drops are logged once per process

    # -- availability ----------------------------------------------------------------------
    def _torch_npu(self) -> Any:
        if self._module is None:
            self._module = import_torch_npu(self.install_hint)
        return self._module

    def probe(self) -> str | None:
        try:
            torch_npu = self._torch_npu()
        except BackendUnavailableError as exc:
            return str(exc)
        if not torch_npu.npu.is_available():
            return f"torch_npu {self._version()} imported but no NPU is visible (torch.npu.is_available() is False)"
        return None

    def _version(self) -> str:
        if self._module is not None:
            return str(getattr(self._module, "__version__", "unknown"))
        try:
            from importlib.metadata import version

            return version("torch-npu")
        except Exception:
            return "not installed"

    def versions(self) -> dict[str, str]:
        out = super().versions()
        out["torch_npu"] = self._version()
        return out

    # -- options ---------------------------------------------------------------------------------
    def validate(self, config: "Config", options: NpuOptions) -> None:
        """Refuse what torch_npu would not do as asked, before the session starts."""
        if config.trace and config.gzip:
            raise ConfigError(
                "gzip=True is not available on the npu backend: torch_npu writes a profiling directory "
                "(ASCEND_PROFILER_OUTPUT/trace_view.json), not a gzip file; allowed: gzip=False "
                "(compress the directory yourself after analysis)"
            )
        if config.trace:
            self._experimental_config_kwargs(options)

    def _experimental_config_kwargs(self, options: NpuOptions) -> dict[str, Any]:
        profiler = self._torch_npu().profiler
        version = self._version()
        _check_supported(options, profiler, version)
        return experimental_kwargs(
            options, accepted_keywords(profiler._ExperimentalConfig), version=version, on_drop=self._warn_once
        )

    def profiler_keywords(self) -> frozenset[str] | None:
        """What ``profiler_kwargs`` may set: keywords of ``torch_npu.profiler.profile`` npuprofile leaves alone."""
        accepted = accepted_keywords(self._torch_npu().profiler.profile)
        return None if accepted is None else accepted - set(MANAGED_KEYWORDS) - {"experimental_config"}

    def _check_profiler_kwargs(self, given: Any) -> None:
        if "experimental_config" in given:
            raise ConfigError(
                "profiler_kwargs: ['experimental_config'] set by npuprofile from the npu= options "
                "(profiler_level, aic_metrics, export_type, ...); allowed: "
                + (", ".join(sorted(self.profiler_keywords() or ())) or "none")
            )
        super()._check_profiler_kwargs(given)

    def activity_map(self) -> dict[str, list[Any]]:
        """torch_npu's ``ProfilerActivity`` values of each kind."""
        activity = self._torch_npu().profiler.ProfilerActivity
        return {"cpu": [activity.CPU], "device": [activity.NPU]}

    def memory_history(self) -> MemoryHistory:
        """torch_npu's caching-allocator history (``torch_npu.npu.memory``)."""
        return AllocatorHistory(self._torch_npu().npu.memory)

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            logger.warning("npuprofile: %s; dropped", message)

    # -- tracing ------------------------------------------------------------------------------------
    def open_trace(self, config: "Config", options: NpuOptions, sink: "TraceSink") -> NpuTrace:
        """torch_npu's profiler, its handler writing ``<stem>_<pid>_<time>_ascend_pt`` under the output dir."""
        profiler = self._torch_npu().profiler
        sink.directory.mkdir(parents=True, exist_ok=True)
        analyse_later = options.analyse and sink.defer
        trace = NpuTrace(sink, self._markers(options), analyse_later=analyse_later)
        handler = profiler.tensorboard_trace_handler(
            dir_name=str(sink.directory), worker_name=_worker_name(sink), analyse_flag=options.analyse and not analyse_later
        )
        if not callable(handler):  # torch_npu swallows its own errors and returns None
            raise BackendError(f"torch_npu tensorboard_trace_handler({str(sink.directory)!r}) returned {handler!r}")
        kwargs = session_profiler_kwargs(config, select_activities(self.activity_map(), config.activities),
                                         self._schedule)
        kwargs["experimental_config"] = profiler._ExperimentalConfig(**self._experimental_config_kwargs(options))
        kwargs["on_trace_ready"] = trace.callback("write trace", handler)
        trace.profile = profiler.profile(**kwargs)
        return trace

    def _schedule(self, schedule: "Schedule") -> Any:
        # torch_npu's positional order (wait, active, warmup, ...) differs from torch's: keywords only.
        return self._torch_npu().profiler.schedule(**schedule.to_dict())

    def _markers(self, options: NpuOptions) -> tuple[Push, Pop]:
        if not options.tx_enabled:
            return range_markers()
        npu = self._torch_npu().npu

        def start(name: str) -> Any:
            return npu.mstx.range_start(message=name, stream=npu.current_stream())

        def end(range_id: Any) -> None:
            npu.mstx.range_end(range_id=range_id)

        return range_markers(start, end)

    # -- sync and timing --------------------------------------------------------------------------
    def synchronize(self) -> None:
        self._torch_npu().npu.synchronize()

    def timer(self) -> Timer:
        npu = self._torch_npu().npu
        return EventTimer(lambda: npu.Event(enable_timing=True))
