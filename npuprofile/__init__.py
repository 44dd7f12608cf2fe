"""npuprofile: one profiling API for PyTorch on CPU, CUDA and Ascend NPU.

Regions (``@profiled``, ``profile_region``) cost almost nothing until a
:func:`session` is running; a session drives the backend's profiler (or only a
timer, with ``trace=False``) through the backend registered for the device.

Importing the package loads only the region machinery; sessions, the registry
and summaries load on first use, so ``import npuprofile`` stays cheap.
"""

from __future__ import annotations

import warnings
from importlib import import_module
from typing import TYPE_CHECKING, Any

from npuprofile import errors
from npuprofile.core import compile as _compile
from npuprofile.core import decorate as _decorate
from npuprofile.core.decorate import profiled
from npuprofile.core.env import enabled_from_env
from npuprofile.core.region import current_region, profile_region

__version__ = "0.1.0"

_decorate.ENABLED_AT_IMPORT = enabled_from_env()
_compile.install()  # registers the torch.compile stand-ins once torch._dynamo is loaded (never imports it)
# SIGTERM saves running sessions; its handler can only be installed from the main thread, so it is
# installed now, in case the sessions start on worker threads (see sessions/lifecycle.py; stdlib only).
from npuprofile.sessions import lifecycle as _lifecycle  # noqa: E402,F401

# Public name -> module that defines it, imported on first access (PEP 562).
_LAZY = {
    "Config": ".sessions.config",
    "Schedule": ".sessions.config",
    "schedule": ".sessions.config",
    "Session": ".sessions.session",
    "session": ".sessions.session",
    "BackendInfo": ".backends.registry",
    "Registry": ".backends.registry",
    "RegionStats": ".core.stats",
    "StepStat": ".summary.model",
    "Summary": ".summary.model",
    "Backend": ".backends.base",
    "Trace": ".backends.base",
    "HostTimer": ".backends.base",
    "OpStat": ".backends.base",
    "Timer": ".backends.base",
    "Comparison": ".analysis.compare",
    "compare": ".analysis.compare",
    "BenchResult": ".tools.bench",
    "bench": ".tools.bench",
    "ModuleProfile": ".tools.modules",
    "profile_module": ".tools.modules",
    "AllRanksSummary": ".sessions.gather",
    "Straggler": ".sessions.gather",
    "OnDemand": ".sessions.on_demand",
    "on_demand": ".sessions.on_demand",
    "Controller": ".sessions.controller",
    "Capture": ".sessions.controller",
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from npuprofile import backends
    from npuprofile.analysis.compare import Comparison, compare
    from npuprofile.backends.base import Backend, HostTimer, OpStat, Timer, Trace
    from npuprofile.backends.registry import BackendInfo, Registry
    from npuprofile.core.stats import RegionStats
    from npuprofile.sessions.config import Config, Schedule, schedule
    from npuprofile.sessions.controller import Capture, Controller
    from npuprofile.sessions.gather import AllRanksSummary, Straggler
    from npuprofile.sessions.on_demand import OnDemand, on_demand
    from npuprofile.sessions.session import Session, session
    from npuprofile.summary.model import StepStat, Summary
    from npuprofile.tools.bench import BenchResult, bench
    from npuprofile.tools.modules import ModuleProfile, profile_module


def __getattr__(name: str) -> Any:
    if name == "backends":  # the registry's view is the backends package itself
        return import_module(".backends", __name__)
    if name == "Adapter":  # deprecated name of Backend; not cached, so every use warns
        warnings.warn("npuprofile.Adapter is deprecated; use npuprofile.Backend", DeprecationWarning, stacklevel=2)
        return import_module(".backends.base", __name__).Backend
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'npuprofile' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {"backends"})


__all__ = [
    "AllRanksSummary",
    "Backend",
    "BackendInfo",
    "BenchResult",
    "Comparison",
    "Capture",
    "Config",
    "Controller",
    "HostTimer",
    "ModuleProfile",
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
    "Trace",
    "backends",
    "bench",
    "compare",
    "current_region",
    "errors",
    "on_demand",
    "profile_module",
    "profile_region",
    "profiled",
    "schedule",
    "session",
    "__version__",
]
