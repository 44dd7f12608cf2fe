"""npuprofile: one profiling API for PyTorch on CPU, CUDA and Ascend NPU.

Regions (``@profiled``, ``profile_region``) cost almost nothing until a
:func:`session` is running; a session drives the backend's profiler (or only a
timer, with ``trace=False``) through the adapter registered for the device.
"""

from __future__ import annotations

from . import errors
from ._bench import BenchResult, bench
from ._config import Config, Schedule, enabled_from_env, schedule
from ._modules import ModuleProfile, profile_module
from ._region import current_region, profile_region, profiled
from ._registry import BackendInfo, Registry, backends
from ._session import Session, session
from ._stats import RegionStats
from ._summary import StepStat, Summary
from .adapters.base import Adapter, HostTimer, OpStat, Timer

__version__ = "0.1.0"

from . import _region as _region_module

_region_module.ENABLED_AT_IMPORT = enabled_from_env()

from . import _compile as _compile_module

_compile_module.install()  # only does something when torch is already imported

__all__ = [
    "Adapter",
    "BackendInfo",
    "BenchResult",
    "Config",
    "HostTimer",
    "ModuleProfile",
    "OpStat",
    "RegionStats",
    "Registry",
    "Schedule",
    "Session",
    "StepStat",
    "Summary",
    "Timer",
    "backends",
    "bench",
    "current_region",
    "errors",
    "profile_module",
    "profile_region",
    "profiled",
    "schedule",
    "session",
    "__version__",
]
