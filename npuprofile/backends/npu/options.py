"""Options of the NPU backend, validated before anything reaches torch_npu.

torch_npu rarely raises on a bad option: it prints a warning and resets the
value (AI Core metrics dropped at Level0, mstx forced on at Level_none, ...).
:class:`NpuOptions` refuses those values and combinations itself, so what the
user asked for is what torch_npu uses, or the user gets a clear error.

The stored values are torch_npu's own constant strings (``"Level1"``,
``"ACL_AICORE_NONE"``, ``"text"``), so they pass through unchanged.
Nothing here imports torch_npu.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from npuprofile.backends.options import normalize_options, parse_number
from npuprofile.core.env import env_name
from npuprofile.errors import ConfigError

#: ``profiler_level`` spellings -> torch_npu ``ProfilerLevel`` values.
PROFILER_LEVELS: dict[str, str] = {
    "none": "Level_none",
    "0": "Level0",
    "1": "Level1",
    "2": "Level2",
}

#: ``aic_metrics`` spellings -> (torch_npu ``AiCMetrics`` attribute, its value).
AIC_METRIC_CONSTANTS: dict[str, tuple[str, str]] = {
    "none": ("AiCoreNone", "ACL_AICORE_NONE"),
    "pipe_utilization": ("PipeUtilization", "ACL_AICORE_PIPE_UTILIZATION"),
    "arithmetic_utilization": ("ArithmeticUtilization", "ACL_AICORE_ARITHMETIC_UTILIZATION"),
    "memory": ("Memory", "ACL_AICORE_MEMORY_BANDWIDTH"),
    "memory_l0": ("MemoryL0", "ACL_AICORE_L0B_AND_WIDTH"),
    "memory_ub": ("MemoryUB", "ACL_AICORE_MEMORY_UB"),
    "resource_conflict_ratio": ("ResourceConflictRatio", "ACL_AICORE_RESOURCE_CONFLICT_RATIO"),
    "l2_cache": ("L2Cache", "ACL_AICORE_L2_CACHE"),
    "memory_access": ("MemoryAccess", "ACL_AICORE_MEMORY_ACCESS"),
}
#: ``aic_metrics`` spellings -> torch_npu ``AiCMetrics`` values.
AIC_METRICS: dict[str, str] = {name: value for name, (_, value) in AIC_METRIC_CONSTANTS.items()}

#: ``export_type`` values -> torch_npu ``ExportType`` attribute names (values equal our spellings).
EXPORT_TYPE_CONSTANTS: dict[str, str] = {"text": "Text", "db": "Db"}
EXPORT_TYPES: tuple[str, ...] = tuple(EXPORT_TYPE_CONSTANTS)

_ALIASES_LEVEL = {value.lower(): name for name, value in PROFILER_LEVELS.items()}
_ALIASES_AIC = {attr.lower(): name for name, (attr, _) in AIC_METRIC_CONSTANTS.items()}


def parse_profiler_level(value: Any, source: str) -> str:
    """``none``/``0``/``1``/``2`` (or ``Level1``, ``1`` as int, torch_npu's constant) -> torch_npu's value."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        word = value.strip().lower()
        word = _ALIASES_LEVEL.get(word, word)
        if word in PROFILER_LEVELS:
            return PROFILER_LEVELS[word]
    raise ConfigError(f"{source}={value!r} is not allowed; allowed: {', '.join(PROFILER_LEVELS)}")


def parse_aic_metrics(value: Any, source: str) -> str:
    """An AI Core metrics set by our name, its torch_npu attribute name or its ACL value."""
    if isinstance(value, str):
        word = value.strip()
        if word in AIC_METRICS.values():
            return word
        key = word.lower()
        key = _ALIASES_AIC.get(key, key)
        if key in AIC_METRICS:
            return AIC_METRICS[key]
    raise ConfigError(f"{source}={value!r} is not allowed; allowed: {', '.join(AIC_METRICS)}")


def parse_export_type(value: Any, source: str) -> tuple[str, ...]:
    """``text``, ``db``, or both (``"text,db"`` or a list)."""
    items = value.split(",") if isinstance(value, str) else value
    if isinstance(items, (list, tuple)) and items:
        words = []
        for item in items:
            word = item.strip().lower() if isinstance(item, str) else None
            if word not in EXPORT_TYPES:
                break
            if word not in words:
                words.append(word)
        else:
            return tuple(sorted(words, key=EXPORT_TYPES.index))
    raise ConfigError(f"{source}={value!r} is not allowed; allowed: text, db, or both ('text,db')")


def parse_threshold(value: Any, source: str) -> float | None:
    """A GC detection threshold in milliseconds (a number >= 0), or ``None``/``"none"`` for off."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "off")):
        return None
    refusal = f"{source}={value!r} is not allowed; allowed: None or a number of milliseconds >= 0"
    try:
        number = parse_number(value, source)
    except ConfigError:
        raise ConfigError(refusal) from None
    if number < 0:
        raise ConfigError(refusal)
    return number


@dataclasses.dataclass(frozen=True)
class NpuOptions:
    """Options of the NPU backend (``session(npu=NpuOptions(...))``, a dict, or ``NPUPROFILE_NPU_*``).

    The defaults are the settings under which NPU traces carry op shapes
    (with ``record_shapes=True``). Values are validated on construction.

    - ``profiler_level``: ``none``, ``0``, ``1``, ``2`` (torch_npu ``ProfilerLevel``).
    - ``aic_metrics``: AI Core metrics (torch_npu ``AiCMetrics``); needs level 1 or 2 unless ``none``.
    - ``export_type``: ``text`` (``trace_view.json`` and CSVs), ``db`` (SQLite), or both.
    - ``l2_cache``, ``op_attr`` (needs ``db`` export), ``record_op_args``, ``data_simplification``.
    - ``msprof_tx`` / ``mstx``: mstx ranges reach the trace (``mstx`` needs a torch_npu that has it).
    - ``gc_detect_threshold``: Python GC pauses above this many ms are recorded; ``None`` is off.
    - ``analyse``: parse the raw data when a trace is ready (slow); ``False`` defers it to
      ``npuprofile analyze DIR``.
    - ``strict_options``: an option the installed torch_npu does not know is an error (``True``)
      or dropped with one warning (``False``).
    """

    profiler_level: str = dataclasses.field(default="Level1", metadata={"parse": parse_profiler_level})
    aic_metrics: str = dataclasses.field(default="ACL_AICORE_NONE", metadata={"parse": parse_aic_metrics})
    export_type: tuple[str, ...] | str = dataclasses.field(default=("text",), metadata={"parse": parse_export_type})
    l2_cache: bool = False
    op_attr: bool = False
    record_op_args: bool = False
    data_simplification: bool = False
    msprof_tx: bool = False
    mstx: bool = False
    gc_detect_threshold: float | None = dataclasses.field(default=None, metadata={"parse": parse_threshold})
    analyse: bool = True
    strict_options: bool = True

    def __post_init__(self) -> None:
        normalize_options(self, "npu")
        self._check_combinations()

    def _check_combinations(self) -> None:
        coarse = self.profiler_level in ("Level0", "Level_none")
        if coarse and self.aic_metrics != AIC_METRICS["none"]:
            raise ConfigError(
                f"npu aic_metrics={self.aic_metrics!r} needs profiler_level 1 or 2 "
                f"(got {self.profiler_level!r}, where torch_npu would silently drop it); "
                "allowed: aic_metrics='none', or profiler_level=1 or 2"
            )
        if self.profiler_level == "Level_none" and not (self.mstx or self.msprof_tx):
            raise ConfigError(
                "npu profiler_level='none' records only mstx ranges and needs mstx=True (or msprof_tx=True); "
                "allowed: set mstx=True, or profiler_level 0, 1 or 2"
            )
        if self.op_attr and "db" not in self.export_type:
            raise ConfigError(
                f"npu op_attr=True needs the db export (got export_type={','.join(self.export_type)!r}, "
                "where torch_npu would silently turn op_attr off); allowed: export_type='db' or 'text,db'"
            )

    @property
    def tx_enabled(self) -> bool:
        """Whether region ranges are also sent as mstx ranges."""
        return self.mstx or self.msprof_tx


def env_var(field: str) -> str:
    """The environment variable of one NPU option: ``NPUPROFILE_NPU_<FIELD>``."""
    return env_name("npu_" + field)
