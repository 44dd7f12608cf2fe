"""npuprofile: one profiling API for PyTorch on CPU, CUDA and Ascend NPU.

Regions (``@profiled``, ``profile_region``) cost almost nothing until a
:func:`session` is running; a session drives the backend's profiler (or only a
timer, with ``trace=False``) through the adapter registered for the device.

Importing the package loads only the region machinery; sessions, the registry
and summaries load on first use, so ``import npuprofile`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from . import _region, errors
from ._env import enabled_from_env
from ._region import current_region, profile_region, profiled

__version__ = "0.1.0"

_region.ENABLED_AT_IMPORT = enabled_from_env()

# Public name -> module that defines it, imported on first access (PEP 562).
_LAZY = {
    "Config": "._config",
    "Schedule": "._config",
    "schedule": "._config",
    "Session": "._session",
    "session": "._session",
    "backends": "._registry",
    "BackendInfo": "._registry",
    "Registry": "._registry",
    "RegionStats": "._stats",
    "StepStat": "._summary",
    "Summary": "._summary",
    "Adapter": ".adapters.base",
    "HostTimer": ".adapters.base",
    "OpStat": ".adapters.base",
    "Timer": ".adapters.base",
    "AllRanksSummary": "._gather",
    "Straggler": "._gather",
    "OnDemand": "._on_demand",
    "on_demand": "._on_demand",
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from ._config import Config, Schedule, schedule
    from ._gather import AllRanksSummary, Straggler
    from ._on_demand import OnDemand, on_demand
    from ._registry import BackendInfo, Registry, backends
    from ._session import Session, session
    from ._stats import RegionStats
    from ._summary import StepStat, Summary
    from .adapters.base import Adapter, HostTimer, OpStat, Timer


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'npuprofile' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Adapter",
    "AllRanksSummary",
    "BackendInfo",
    "Config",
    "HostTimer",
    "OnDemand",
    "OpStat",
    "RegionStats",
    "Registry",
    "Schedule",
    "Straggler",
    "Session",
    "StepStat",
    "Summary",
    "Timer",
    "backends",
    "current_region",
    "errors",
    "on_demand",
    "profile_region",
    "profiled",
    "schedule",
    "session",
    "__version__",
]
