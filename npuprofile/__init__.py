"""npuprofile: one profiling API for PyTorch on CPU, CUDA and Ascend NPU.

Regions (``@profiled``, ``profile_region``) cost almost nothing until a
:func:`session` is running; a session drives the backend's profiler (or only a
timer, with ``trace=False``) through the adapter registered for the device.
"""

from __future__ import annotations

from . import errors
from ._config import Config, Schedule, enabled_from_env, schedule
from ._gather import AllRanksSummary, Straggler
from ._on_demand import OnDemand, on_demand
from ._region import current_region, profile_region, profiled
from ._registry import BackendInfo, Registry, backends
from ._session import Session, session
from ._stats import RegionStats
from ._summary import StepStat, Summary
from .adapters.base import Adapter, HostTimer, OpStat, Timer

__version__ = "0.1.0"

from . import _region as _region_module

_region_module.ENABLED_AT_IMPORT = enabled_from_env()

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
