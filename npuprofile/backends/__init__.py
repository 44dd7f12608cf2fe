"""Backends: one module per device family, and the process-wide registry of them.

This package is also the registry's view for callers (``npuprofile.backends``):
:func:`get` a backend by name (``"auto"`` picks the best available one),
:func:`names`, :func:`available`, :func:`describe`, and :func:`register` /
:func:`unregister` for third-party backends (entry points in the
``npuprofile.backends`` group register themselves).
"""

from __future__ import annotations

from npuprofile.backends.registry import AUTO, ENTRY_POINT_GROUP, BackendInfo, Registry
from npuprofile.backends.registry import backends as _registry

get = _registry.get
names = _registry.names
available = _registry.available
adapters = _registry.adapters
describe = _registry.describe
trace_layouts = _registry.trace_layouts
register = _registry.register
unregister = _registry.unregister
reset = _registry.reset

__all__ = [
    "AUTO",
    "ENTRY_POINT_GROUP",
    "BackendInfo",
    "Registry",
    "adapters",
    "available",
    "describe",
    "get",
    "names",
    "register",
    "reset",
    "trace_layouts",
    "unregister",
]
