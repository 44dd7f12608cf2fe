"""Backends: one module per device family, and the process-wide registry of them.

This package is also the registry's view for callers (``npuprofile.backends``):
:func:`get` a backend by name (``"auto"`` picks the best available one),
:func:`names`, :func:`available`, :func:`describe`, :func:`trace_layouts`,
:data:`entries` (a read-only mapping of name to :class:`BackendEntry`), and
:func:`register` / :func:`unregister` for third-party backends (entry points in
the ``npuprofile.backends`` group register themselves).

The protocol a backend implements is in :mod:`npuprofile.backends.base`
(:class:`Backend`, and the per-session :class:`Trace`).
"""

from __future__ import annotations

from npuprofile.backends.base import Backend, Trace, TraceLayout
from npuprofile.backends.registry import AUTO, ENTRY_POINT_GROUP, BackendEntry, BackendInfo, Registry
from npuprofile.backends.registry import backends as _registry
from npuprofile.core.deprecation import renamed

get = _registry.get
load = _registry.load
names = _registry.names
available = _registry.available
instances = _registry.instances
describe = _registry.describe
trace_layouts = _registry.trace_layouts
register = _registry.register
unregister = _registry.unregister
reset = _registry.reset
#: Read-only view of the registry: name -> :class:`BackendEntry`, highest priority first.
entries = _registry.entries()


__getattr__ = renamed(__name__, {"adapters": ("npuprofile.backends.instances()", _registry.instances)})


__all__ = [
    "AUTO",
    "ENTRY_POINT_GROUP",
    "Backend",
    "BackendEntry",
    "BackendInfo",
    "Registry",
    "Trace",
    "TraceLayout",
    "available",
    "describe",
    "entries",
    "get",
    "instances",
    "load",
    "names",
    "register",
    "reset",
    "trace_layouts",
    "unregister",
]
