"""The Ascend NPU backend: ``torch_npu.profiler`` with CPU + NPU activities, NPU-event timing.

torch_npu is imported lazily, inside this adapter, and any failure of that
import (a missing package, missing CANN libraries) only makes the backend
unavailable, with the reason kept. Only torch_npu's own objects reach
``torch_npu.profiler.profile``: its ``_ExperimentalConfig``, its trace handler,
its schedule. Options are validated by :class:`NpuOptions` and checked against
the installed torch_npu (:meth:`NpuAdapter.validate`) before anything starts.

:data:`TORCH_NPU_API` declares every torch_npu name, keyword and constant this
module (and the test fake) relies on; a contract test checks it against the
published wheels.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import logging
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection, Mapping

from npuprofile.backends.base import Adapter, OpStat, Timer, TraceLayout
from npuprofile.backends.events import EventTimer
from npuprofile.backends.npu.options import (
    AIC_METRIC_CONSTANTS,
    EXPORT_TYPE_CONSTANTS,
    PROFILER_LEVELS,
    NpuOptions,
    parse_npu_options,
)
from npuprofile.errors import BackendError, BackendUnavailableError, ConfigError, TraceError

if TYPE_CHECKING:
    from npuprofile.sessions.config import Config, Schedule
    from npuprofile.sessions.files import TraceSink

__all__ = ["NpuAdapter", "NpuOptions", "TORCH_NPU_API", "ApiUse", "analyse_traces", "experimental_kwargs"]

logger = logging.getLogger("npuprofile")

INSTALL_HINT = "pip install npuprofile[npu]"
#: Suffix torch_npu gives each profiling directory.
DIR_SUFFIX = "_ascend_pt"
#: Sub-directory holding analysed output, and the Chrome trace inside it.
OUTPUT_DIR = "ASCEND_PROFILER_OUTPUT"
TRACE_VIEW = "trace_view.json"
#: torch_npu resets worker names this long or longer to the host name.
MAX_WORKER_NAME = 226


@dataclasses.dataclass(frozen=True)
class ApiUse:
    """One torch_npu name this backend relies on.

    ``path`` is the dotted name as we reach it (``also``: other places a
    release may keep it instead). ``params`` are the keywords we pass (the real
    callable must accept each by keyword); ``optional`` are keywords we pass
    only when the installed signature has them (checked at run time).
    ``keyword_only`` says the real callable takes its parameters by keyword
    only. ``value`` is what a constant must equal. ``suffix`` names a string
    literal in module ``path`` that must end with it (a file-name pattern).
    """

    path: str
    params: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    keyword_only: bool = False
    value: str | int | None = None
    also: tuple[str, ...] = ()
    suffix: str | None = None


#: Keywords of ``_ExperimentalConfig`` we always pass (present since the 2.1 line).
EXPERIMENTAL_KEYWORDS: tuple[str, ...] = (
    "profiler_level", "aic_metrics", "l2_cache", "msprof_tx", "data_simplification",
    "record_op_args", "op_attr", "gc_detect_threshold", "export_type",
)
#: Keywords we pass only when asked for and only when the installed torch_npu has them.
EXPERIMENTAL_OPTIONAL: tuple[str, ...] = ("mstx",)

_PROFILE_KEYWORDS = (
    "activities", "schedule", "on_trace_ready", "record_shapes", "profile_memory",
    "with_stack", "with_flops", "with_modules", "experimental_config",
)
_SCHEDULE_KEYWORDS = ("wait", "active", "warmup", "repeat", "skip_first")
_HANDLER_KEYWORDS = ("dir_name", "worker_name", "analyse_flag")
_P = "torch_npu.profiler"

#: Everything this backend (and tests/fake_torch_npu) uses from torch_npu.
TORCH_NPU_API: tuple[ApiUse, ...] = (
    ApiUse("torch_npu.__version__"),
    ApiUse(f"{_P}.profile", params=_PROFILE_KEYWORDS, keyword_only=True),
    ApiUse(f"{_P}.ProfilerActivity.CPU"),
    ApiUse(f"{_P}.ProfilerActivity.NPU"),
    ApiUse(f"{_P}.tensorboard_trace_handler", params=_HANDLER_KEYWORDS),
    ApiUse(f"{_P}.schedule", params=_SCHEDULE_KEYWORDS),
    ApiUse(f"{_P}._ExperimentalConfig", params=EXPERIMENTAL_KEYWORDS, optional=EXPERIMENTAL_OPTIONAL),
    ApiUse(f"{_P}.supported_profiler_level"),
    ApiUse(f"{_P}.supported_ai_core_metrics"),
    ApiUse(f"{_P}.supported_export_type"),
    ApiUse(f"{_P}.profiler.analyse", params=("profiler_path", "max_process_number")),
    *(ApiUse(f"{_P}.ProfilerLevel.{value}", value=value) for value in PROFILER_LEVELS.values()),
    *(ApiUse(f"{_P}.AiCMetrics.{attr}", value=value) for attr, value in AIC_METRIC_CONSTANTS.values()),
    *(ApiUse(f"{_P}.ExportType.{attr}", value=value) for value, attr in EXPORT_TYPE_CONSTANTS.items()),
    ApiUse("torch_npu.npu.is_available"),
    ApiUse("torch_npu.npu.synchronize"),
    ApiUse("torch_npu.npu.current_stream"),
    ApiUse("torch_npu.npu.Event", params=("enable_timing",)),
    ApiUse("torch_npu.npu.Event.record"),
    ApiUse("torch_npu.npu.Event.synchronize"),
    ApiUse("torch_npu.npu.Event.elapsed_time"),
    ApiUse("torch_npu.npu.mstx.range_start", params=("message", "stream")),
    ApiUse("torch_npu.npu.mstx.range_end", params=("range_id",)),
    ApiUse(f"{_P}.analysis.prof_common_func._constant.Constant.OUTPUT_DIR", value=OUTPUT_DIR),
    ApiUse(
        f"{_P}.analysis.prof_common_func._constant.Constant.TRACE_VIEW",
        value=TRACE_VIEW,
        also=(f"{_P}.analysis.prof_view._trace_view_parser.TraceViewParser.TRACE_VIEW",),
    ),
    ApiUse(f"{_P}._profiler_path_creator", suffix=DIR_SUFFIX),
    ApiUse(f"{_P}.analysis.prof_common_func._constant.Constant.MAX_WORKER_NAME_LENGTH", value=MAX_WORKER_NAME),
)


# -- importing torch_npu ------------------------------------------------------------------


def describe_import_error(exc: BaseException) -> str:
    """Why ``import torch_npu`` failed, in words for ``npuprofile backends``."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ModuleNotFoundError) and exc.name == "torch_npu":
        return f"torch_npu not installed ({INSTALL_HINT})"
    message = str(exc)
    if isinstance(exc, OSError) or any(marker in message for marker in (".so", "CANN", "libascend", "libhccl")):
        return (
            f"CANN libraries missing: {text} (install the CANN toolkit and source its set_env.sh, "
            "e.g. /usr/local/Ascend/ascend-toolkit/set_env.sh)"
        )
    return f"torch_npu cannot be imported: {text}"


def import_torch_npu() -> Any:
    """Import torch_npu, or raise :class:`BackendUnavailableError` saying why it cannot be."""
    try:
        return importlib.import_module("torch_npu")
    except Exception as exc:  # missing CANN libraries raise OSError/RuntimeError, not only ImportError
        raise BackendUnavailableError(describe_import_error(exc)) from exc


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


def accepted_keywords(callable_: Any) -> frozenset[str] | None:
    """Keyword names a callable accepts (``None`` when it takes ``**kwargs``)."""
    params = inspect.signature(callable_).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params if p.kind is not inspect.Parameter.POSITIONAL_ONLY)


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


# -- the adapter ------------------------------------------------------------------------------------


class _TxRange:
    """Handle of one region's ranges: the profiler's record_function plus an mstx range."""

    __slots__ = ("record", "range_id")

    def __init__(self, record: Any, range_id: Any) -> None:
        self.record = record
        self.range_id = range_id


class NpuAdapter(Adapter):
    """Profiles Huawei Ascend NPUs with ``torch_npu.profiler``."""

    name = "npu"
    layout = TraceLayout(
        backend="npu",
        trace_globs=("ASCEND_PROFILER_OUTPUT/trace_view.json",),
        device_process_patterns=(r"Ascend Hardware", r"\bHCCL\b", r"\bNPU\b"),
        communication_patterns=(r"hcom", r"hccl", r"\bsend\b", r"\breceive\b", r"\brecv\b"),
        host_process_groups=(("Python", "CANN"),),
        overlap_process_pattern=r"Overlap Analysis",
        rank_file_glob="profiler_info_*.json",
        memory_patterns=(r"^MEMCPY", r"^MEMSET"),
        overlap_threads=(("Computing", "compute"), ("Communication", "communication"),
                         ("Communication(Not Overlapped)", "communication_not_overlapped"), ("Free", "idle")),
        table_globs=("kernel_details*.csv", "op_statistic*.csv", "step_trace_time*.csv"),
        table_reader="npuprofile.backends.npu.tables:read_tables",
    )
    description = "torch_npu.profiler, CPU + NPU activities, experimental config, NPU-event timing"
    #: The ``torch.device`` type models run on with this backend.
    torch_device = "npu"

    def __init__(self) -> None:
        self._module: Any = None
        self._tx = False
        self._before: "weakref.WeakKeyDictionary[Any, frozenset[Path]]" = weakref.WeakKeyDictionary()
        self._warned: set[str] = set()

    # -- availability ----------------------------------------------------------------------
    def _torch_npu(self) -> Any:
        if self._module is None:
            self._module = import_torch_npu()
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
    def parse_options(self, value: Any, environ: Mapping[str, str]) -> NpuOptions:
        return parse_npu_options(value, environ)

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

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            logger.warning("npuprofile: %s; dropped", message)

    # -- tracing profiler ------------------------------------------------------------------------------
    def create_profiler(
        self, config: "Config", options: NpuOptions, on_trace_ready: Callable[[Any], None] | None
    ) -> Any:
        torch_npu = self._torch_npu()
        profiler = torch_npu.profiler
        kwargs: dict[str, Any] = {
            "activities": [profiler.ProfilerActivity.CPU, profiler.ProfilerActivity.NPU],
            "record_shapes": config.record_shapes,
            "profile_memory": config.profile_memory,
            "with_stack": config.with_stack,
            "with_flops": config.with_flops,
            "with_modules": config.with_modules,
            "experimental_config": profiler._ExperimentalConfig(**self._experimental_config_kwargs(options)),
            "on_trace_ready": on_trace_ready,
        }
        if config.schedule is not None:
            kwargs["schedule"] = self.schedule(config.schedule)
        self._tx = options.tx_enabled
        return profiler.profile(**kwargs)

    def schedule(self, schedule: "Schedule") -> Any:
        # torch_npu's positional order (wait, active, warmup, ...) differs from torch's: keywords only.
        return self._torch_npu().profiler.schedule(
            wait=schedule.wait,
            active=schedule.active,
            warmup=schedule.warmup,
            repeat=schedule.repeat,
            skip_first=schedule.skip_first,
        )

    def trace_handler(self, sink: "TraceSink", options: NpuOptions) -> Callable[[Any], None]:
        """torch_npu's own handler, writing ``<stem>_<pid>_<time>_ascend_pt`` under the output dir."""
        directory = sink.directory
        directory.mkdir(parents=True, exist_ok=True)
        self._before[sink] = frozenset(self._profiling_dirs(sink))
        handler = self._torch_npu().profiler.tensorboard_trace_handler(
            dir_name=str(directory), worker_name=_worker_name(sink), analyse_flag=options.analyse
        )
        if not callable(handler):  # torch_npu swallows its own errors and returns None
            raise BackendError(f"torch_npu tensorboard_trace_handler({str(directory)!r}) returned {handler!r}")
        return handler

    def _profiling_dirs(self, sink: "TraceSink") -> list[Path]:
        pattern = f"{_worker_name(sink)}_*{DIR_SUFFIX}"
        return sorted(path for path in sink.directory.glob(pattern) if path.is_dir())

    def collect_traces(self, sink: "TraceSink", options: NpuOptions) -> None:
        """Report the profiling directories this session produced, and the analysed traces inside."""
        before = self._before.pop(sink, frozenset())
        for directory in self._profiling_dirs(sink):
            if directory in before:
                continue
            sink.add(directory)
            for output in analysed_outputs(directory):
                sink.add(output)

    def op_table(self, profiler: Any, limit: int) -> list[OpStat]:
        """torch_npu's profiler has no ``key_averages()``: op statistics come from the analysed trace."""
        return []

    def trace_suffix(self, gzip: bool) -> str:
        return DIR_SUFFIX

    # -- markers, sync, timing --------------------------------------------------------------------------
    def range_push(self, name: str) -> Any:
        from torch.autograd.profiler import record_function

        record = record_function(name)
        record.__enter__()
        if not self._tx:
            return record
        try:
            npu = self._module.npu
            return _TxRange(record, npu.mstx.range_start(message=name, stream=npu.current_stream()))
        except BaseException:
            record.__exit__(None, None, None)
            raise

    def range_pop(self, handle: Any) -> None:
        if handle.__class__ is not _TxRange:
            handle.__exit__(None, None, None)
            return
        try:
            self._module.npu.mstx.range_end(range_id=handle.range_id)
        finally:
            handle.record.__exit__(None, None, None)

    def synchronize(self) -> None:
        self._torch_npu().npu.synchronize()

    def timer(self) -> Timer:
        npu = self._torch_npu().npu
        return EventTimer(lambda: npu.Event(enable_timing=True))


def _worker_name(sink: "TraceSink") -> str:
    """The worker name torch_npu puts first in directory names: our stem, which carries the rank."""
    return sink.stem[: MAX_WORKER_NAME - 1]


# -- deferred analysis --------------------------------------------------------------------------------------


def analysed_outputs(directory: Path) -> list[Path]:
    """The analysed traces inside one profiling directory (``trace_view.json``, ``*.db``), if any."""
    output = directory / OUTPUT_DIR
    if not output.is_dir():
        return []
    found = [output / TRACE_VIEW] if (output / TRACE_VIEW).is_file() else []
    return found + sorted(output.glob("*.db"))


def profiling_dirs(path: Path) -> list[Path]:
    """``path`` itself when it is a torch_npu profiling directory, else the ones directly inside it."""
    if not path.exists():
        raise FileNotFoundError(f"{str(path)!r} does not exist")
    if not path.is_dir():
        raise TraceError(f"{str(path)!r} is not a directory; allowed: a *{DIR_SUFFIX} directory or its parent")
    if path.name.endswith(DIR_SUFFIX):
        return [path]
    found = sorted(child for child in path.iterdir() if child.is_dir() and child.name.endswith(DIR_SUFFIX))
    if not found:
        raise TraceError(f"no *{DIR_SUFFIX} directory in {str(path)!r}; allowed: a directory torch_npu profiled into")
    return found


def analyse_traces(path: str | Path, *, max_process_number: int | None = None) -> list[Path]:
    """Run torch_npu's offline analysis on profiling directories recorded with ``analyse=False``.

    ``path`` is one ``*_ascend_pt`` directory or a directory holding several.
    Returns the analysed outputs (``trace_view.json`` or ``*.db``) found afterwards.
    Raises :class:`BackendUnavailableError` when torch_npu cannot be imported.
    """
    directories = profiling_dirs(Path(path))
    try:
        analyse = importlib.import_module("torch_npu.profiler.profiler").analyse
    except BackendUnavailableError:
        raise
    except Exception as exc:
        raise BackendUnavailableError(
            f"analysing NPU traces needs torch_npu: {describe_import_error(exc)}"
        ) from exc
    outputs: list[Path] = []
    for directory in directories:
        kwargs: dict[str, Any] = {"profiler_path": str(directory)}
        if max_process_number is not None:
            kwargs["max_process_number"] = max_process_number
        analyse(**kwargs)
        found = analysed_outputs(directory)
        if not found:
            raise TraceError(f"torch_npu analysed {str(directory)!r} but wrote no {OUTPUT_DIR}/{TRACE_VIEW} or .db")
        outputs.extend(found)
    return outputs
