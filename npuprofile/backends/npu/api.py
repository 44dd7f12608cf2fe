"""Everything the NPU backend uses from torch_npu, declared in one table, and importing it.

:data:`TORCH_NPU_API` declares every torch_npu name, keyword and constant the
backend (and the test fake) relies on; a contract test checks it against the
published wheels. torch_npu is imported only by :func:`import_torch_npu`, and
any failure of that import (a missing package, missing CANN libraries) is
turned into a reason the backend is unavailable.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from npuprofile.backends.npu.layout import DIR_SUFFIX, MAX_WORKER_NAME, OUTPUT_DIR, TRACE_VIEW
from npuprofile.backends.npu.options import AIC_METRIC_CONSTANTS, EXPORT_TYPE_CONSTANTS, PROFILER_LEVELS
from npuprofile.backends.registry import BUILTINS
from npuprofile.errors import BackendUnavailableError

__all__ = [
    "EXPERIMENTAL_KEYWORDS", "EXPERIMENTAL_OPTIONAL", "INSTALL_HINT", "TORCH_NPU_API", "ApiUse",
    "describe_import_error", "import_torch_npu",
]

#: What to install for this backend: the hint of its registry entry.
INSTALL_HINT: str = BUILTINS["npu"]["hint"]


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
    ApiUse("torch_npu.npu.memory._record_memory_history", params=("enabled", "max_entries")),
    ApiUse("torch_npu.npu.memory._snapshot"),
    ApiUse(f"{_P}.analysis.prof_common_func._constant.Constant.OUTPUT_DIR", value=OUTPUT_DIR),
    ApiUse(
        f"{_P}.analysis.prof_common_func._constant.Constant.TRACE_VIEW",
        value=TRACE_VIEW,
        also=(f"{_P}.analysis.prof_view._trace_view_parser.TraceViewParser.TRACE_VIEW",),
    ),
    ApiUse(f"{_P}._profiler_path_creator", suffix=DIR_SUFFIX),
    ApiUse(f"{_P}.analysis.prof_common_func._constant.Constant.MAX_WORKER_NAME_LENGTH", value=MAX_WORKER_NAME),
)


def describe_import_error(exc: BaseException, hint: str = INSTALL_HINT) -> str:
    """Why ``import torch_npu`` failed, in words for ``npuprofile backends``."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ModuleNotFoundError) and exc.name == "torch_npu":
        return f"torch_npu not installed ({hint})"
    message = str(exc)
    if isinstance(exc, OSError) or any(marker in message for marker in (".so", "CANN", "libascend", "libhccl")):
        return (
            f"CANN libraries missing: {text} (install the CANN toolkit and source its set_env.sh, "
            "e.g. /usr/local/Ascend/ascend-toolkit/set_env.sh)"
        )
    return f"torch_npu cannot be imported: {text}"


def import_torch_npu(hint: str = INSTALL_HINT) -> Any:
    """Import torch_npu, or raise :class:`BackendUnavailableError` saying why it cannot be."""
    try:
        return importlib.import_module("torch_npu")
    except Exception as exc:  # missing CANN libraries raise OSError/RuntimeError, not only ImportError
        raise BackendUnavailableError(describe_import_error(exc, hint)) from exc
