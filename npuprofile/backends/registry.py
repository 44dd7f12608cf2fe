"""The process-wide registry of backends.

Entries are data: a name, what to load (a dotted path ``"pkg.module.Class"``,
a :class:`Backend` subclass, a factory returning a backend, or a backend
object), a priority for ``"auto"`` and an install hint. Built-ins are
declared in :data:`BUILTINS` by dotted path, so nothing is imported until a
backend is asked for; third parties call :meth:`Registry.register` or
declare an entry point in the ``npuprofile.backends`` group (naming a factory
or a Backend class; its ``priority`` and ``hint`` attributes are read if set).
Callers read the registry through :meth:`Registry.entries`, a read-only view.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from importlib import import_module
from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping, Union

from npuprofile.backends.base import Backend, Timer, Trace, TraceLayout
from npuprofile.errors import BackendError, BackendUnavailableError, ConfigError, UnknownBackendError

logger = logging.getLogger("npuprofile")

__all__ = ["AUTO", "BUILTINS", "ENTRY_POINT_GROUP", "BackendEntry", "BackendInfo", "Registry", "backends"]

ENTRY_POINT_GROUP = "npuprofile.backends"
AUTO = "auto"

#: What a registration may name: a dotted path, a Backend class, a factory, or a backend object.
Target = Union[str, Callable[[], Backend], Backend]

#: The backends that ship with npuprofile. ``auto`` checks device backends before CPU, and NPU
#: before CUDA because torch_npu can alias ``torch.cuda`` to the NPU.
BUILTINS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "npu": MappingProxyType({
        "class": "npuprofile.backends.npu.backend.NpuBackend",
        "priority": 20,
        "hint": "pip install npuprofile[npu]",
    }),
    "cuda": MappingProxyType({
        "class": "npuprofile.backends.cuda.CudaBackend",
        "priority": 10,
        "hint": "a torch build with CUDA or ROCm, see pytorch.org/get-started",
    }),
    "cpu": MappingProxyType({
        "class": "npuprofile.backends.cpu.CpuBackend",
        "priority": 0,
        "hint": "pip install torch",
    }),
})


@dataclasses.dataclass(frozen=True)
class BackendEntry:
    """One registration, as callers see it (read-only)."""

    name: str
    #: The dotted path, or the qualified name of the class or factory, registered.
    target: str
    priority: int
    #: What to install when the backend is unavailable ("" when none was given).
    hint: str
    #: ``"builtin"``, ``"entry point"`` or ``"registered"``.
    origin: str


@dataclasses.dataclass(frozen=True)
class BackendInfo:
    """What ``npuprofile backends`` shows for one backend."""

    name: str
    priority: int
    available: bool
    reason: str | None
    description: str
    versions: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class _Entry:
    info: BackendEntry
    target: Target
    backend: Backend | None = None


class _Unloadable(Backend):
    """Stands in for a backend whose module or class cannot be imported: unavailable, saying why."""

    def __init__(self, reason: str) -> None:
        self._reason = reason

    def probe(self) -> str | None:
        return self._reason

    def options(self, value: Any, environ: Mapping[str, str]) -> Any:
        return value  # cannot be checked here; a session never runs on this backend

    def versions(self) -> dict[str, str]:
        return {}

    def timer(self) -> Timer:
        raise BackendUnavailableError(self._reason)

    def synchronize(self) -> None:
        raise BackendUnavailableError(self._reason)

    def open_trace(self, config: Any, options: Any, sink: Any) -> Trace:
        raise BackendUnavailableError(self._reason)


class _EntriesView(Mapping[str, BackendEntry]):
    """A live, read-only view of the registry: name -> :class:`BackendEntry`, highest priority first."""

    def __init__(self, registry: "Registry") -> None:
        self._registry = registry

    def __getitem__(self, name: str) -> BackendEntry:
        with self._registry._lock:
            self._registry._load_entry_points()
            return self._registry._entries[name].info

    def __iter__(self) -> Iterator[str]:
        return iter(self._registry.names())

    def __len__(self) -> int:
        return len(self._registry.names())

    def __repr__(self) -> str:
        return f"<backend entries {dict(self)!r}>"


class Registry:
    """Named backends with priorities; ``get("auto")`` picks the best available one."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.RLock()
        self._entry_points_loaded = False
        self._view = _EntriesView(self)

    # -- registering ----------------------------------------------------------------------------
    def register(
        self,
        name: str,
        backend: Target,
        *,
        priority: int = 0,
        replace: bool = False,
        hint: str = "",
        origin: str = "registered",
    ) -> None:
        """Register ``backend`` under ``name``.

        ``backend`` is a dotted path (``"pkg.module.Class"`` or
        ``"pkg.module:factory"``, imported on first use), a :class:`Backend`
        subclass, a factory returning a backend, or a backend object. Higher
        ``priority`` wins for ``"auto"``; ``hint`` says what to install when
        the backend is unavailable. Registering a taken name is an error
        unless ``replace=True``.
        """
        if not isinstance(name, str) or not name.isidentifier() or name == AUTO:
            raise ConfigError(
                f"backend name {name!r} is not allowed; allowed: a Python identifier other than 'auto'"
            )
        if isinstance(backend, str):
            if not _is_dotted_path(backend):
                raise ConfigError(
                    f"backend {name!r}: {backend!r} is not a dotted path; allowed: 'package.module.Class' "
                    "or 'package.module:factory'"
                )
        elif not (isinstance(backend, Backend) or callable(backend)):
            raise ConfigError(
                f"backend {name!r}: {backend!r} is not callable; allowed: a Backend class, a factory, "
                "a Backend object or a dotted path"
            )
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ConfigError(f"backend {name!r}: priority={priority!r} is not an integer")
        if not isinstance(hint, str):
            raise ConfigError(f"backend {name!r}: hint={hint!r} is not a string")
        info = BackendEntry(name, _describe_target(backend), priority, hint, origin)
        with self._lock:
            if name in self._entries and not replace:
                raise BackendError(f"backend {name!r} is already registered; pass replace=True to replace it")
            self._entries[name] = _Entry(info, backend)

    def unregister(self, name: str) -> None:
        """Remove a registered backend."""
        with self._lock:
            self._load_entry_points()
            if name not in self._entries:
                raise self._unknown(name)
            del self._entries[name]

    def reset(self) -> None:
        """Forget every registration and re-register the built-in backends (for tests)."""
        with self._lock:
            self._entries.clear()
            self._entry_points_loaded = False
        register_builtins(self)

    # -- reading ----------------------------------------------------------------------------------
    def entries(self) -> Mapping[str, BackendEntry]:
        """A live read-only view: name -> :class:`BackendEntry`, highest priority first."""
        return self._view

    def names(self) -> list[str]:
        """Registered names, highest priority first."""
        return [entry.info.name for entry in self._ordered()]

    def get(self, name: str = AUTO) -> Backend:
        """The backend registered as ``name``; ``"auto"`` picks the highest-priority available one.

        Raises :class:`UnknownBackendError` (listing the known names) for an unknown
        name and :class:`BackendUnavailableError` (with the reason) for one that
        cannot run here.
        """
        if not isinstance(name, str):
            raise ConfigError(f"backend={name!r} is not a string; allowed: {', '.join([AUTO, *self.names()])}")
        key = name.strip().lower()
        if key == AUTO:
            for entry in self._ordered():
                backend = self._backend(entry)
                if backend.is_available():
                    return backend
            raise BackendUnavailableError("no registered backend is available: " + self._reasons())
        backend = self.load(key)
        reason = backend.unavailable_reason()
        if reason is not None:
            raise BackendUnavailableError(f"backend {key!r} is not available: {reason}")
        return backend

    def load(self, name: str) -> Backend:
        """The backend registered as ``name``, loaded but not probed (it may not run here)."""
        with self._lock:
            self._load_entry_points()
            entry = self._entries.get(name)
        if entry is None:
            raise self._unknown(name)
        return self._backend(entry)

    def available(self) -> list[str]:
        """Names of the backends that can run here, highest priority first."""
        return [entry.info.name for entry in self._ordered() if self._backend(entry).is_available()]

    def instances(self) -> Iterator[Backend]:
        """Every registered backend, available or not, highest priority first."""
        for entry in self._ordered():
            yield self._backend(entry)

    def trace_layouts(self) -> list[TraceLayout]:
        """The trace layout of every registered backend, highest priority first (nothing is probed)."""
        return [backend.layout for backend in self.instances()]

    def describe(self) -> list[BackendInfo]:
        """Availability, reason and versions of every registered backend."""
        infos = []
        for entry in self._ordered():
            backend = self._backend(entry)
            reason = backend.unavailable_reason()
            try:
                versions = backend.versions()
            except Exception as exc:  # versions are informative only
                versions = {"error": f"{type(exc).__name__}: {exc}"}
            info = entry.info
            infos.append(BackendInfo(info.name, info.priority, reason is None, reason, backend.description, versions))
        return infos

    # -- internals ----------------------------------------------------------------------------------
    def _ordered(self) -> list[_Entry]:
        with self._lock:
            self._load_entry_points()
            entries = list(self._entries.values())
        return sorted(entries, key=lambda entry: -entry.info.priority)

    def _backend(self, entry: _Entry) -> Backend:
        with self._lock:
            if entry.backend is None:
                entry.backend = self._make(entry)
            return entry.backend

    def _make(self, entry: _Entry) -> Backend:
        info, target = entry.info, entry.target
        if isinstance(target, str):
            try:
                target = _import_target(target)
            except Exception as exc:  # a missing plugin module makes its backend unavailable, not an error
                reason = f"cannot import {info.target}: {type(exc).__name__}: {exc}"
                return _Unloadable(f"{reason} ({info.hint})" if info.hint else reason)
        backend = target if isinstance(target, Backend) else target() if callable(target) else target
        if not isinstance(backend, Backend):
            raise BackendError(f"backend {info.name!r}: {info.target} gave {backend!r}, not an npuprofile Backend")
        backend.name = info.name  # the registered name is the backend's identity
        if info.hint:
            backend.install_hint = info.hint
        return backend

    def _unknown(self, name: str) -> UnknownBackendError:
        return UnknownBackendError(f"unknown backend {name!r}; known: {', '.join([AUTO, *self.names()])}")

    def _reasons(self) -> str:
        return "; ".join(f"{e.info.name}: {self._backend(e).unavailable_reason()}" for e in self._ordered())

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        from importlib.metadata import entry_points

        for point in entry_points(group=ENTRY_POINT_GROUP):
            if point.name in self._entries:
                continue
            try:
                target = point.load()
                priority = int(getattr(target, "priority", 0))
                hint = str(getattr(target, "hint", "") or getattr(target, "install_hint", ""))
                self.register(point.name, target, priority=priority, hint=hint, origin="entry point")
            except Exception as exc:  # a broken plugin must not break profiling
                logger.warning("npuprofile: entry point %r (%s) failed to load: %s", point.name, point.value, exc)


def register_builtins(registry: Registry) -> None:
    """Register the backends that ship with npuprofile (from :data:`BUILTINS`)."""
    for name, spec in BUILTINS.items():
        registry.register(
            name, spec["class"], priority=spec["priority"], hint=spec["hint"], replace=True, origin="builtin"
        )


def _is_dotted_path(text: str) -> bool:
    module, _, attr = text.replace(":", ".").rpartition(".")
    return bool(module) and all(part.isidentifier() for part in (*module.split("."), attr))


def _import_target(path: str) -> Any:
    """Import ``"pkg.module.Name"`` or ``"pkg.module:Name"`` (attributes may be dotted after ``:``)."""
    if ":" in path:
        module, _, attrs = path.partition(":")
    else:
        module, _, attrs = path.rpartition(".")
    found: Any = import_module(module)
    for attr in attrs.split("."):
        found = getattr(found, attr)
    return found


def _describe_target(target: Target) -> str:
    if isinstance(target, str):
        return target
    if isinstance(target, Backend):
        target = type(target)
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None) or repr(target)
    return f"{module}.{qualname}" if module else qualname


backends = Registry()
register_builtins(backends)
