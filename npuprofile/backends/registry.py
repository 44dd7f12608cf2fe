"""The process-wide registry of backend adapters.

Built-in adapters register at import; third parties register with
:meth:`Registry.register` or through the ``npuprofile.backends`` entry-point
group (each entry point names a factory: a callable returning an Adapter).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any, Callable, Iterator

from npuprofile.backends.base import Adapter, TraceLayout
from npuprofile.errors import BackendError, BackendUnavailableError, ConfigError, UnknownBackendError

logger = logging.getLogger("npuprofile")

ENTRY_POINT_GROUP = "npuprofile.backends"
AUTO = "auto"

AdapterFactory = Callable[[], Adapter]


@dataclasses.dataclass
class _Entry:
    name: str
    factory: AdapterFactory
    priority: int
    adapter: Adapter | None = None


@dataclasses.dataclass(frozen=True)
class BackendInfo:
    """What ``npuprofile backends`` shows for one adapter."""

    name: str
    priority: int
    available: bool
    reason: str | None
    description: str
    versions: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return dataclasses.asdict(self)


class Registry:
    """Named adapter factories with priorities; ``get("auto")`` picks the best available one."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.RLock()
        self._entry_points_loaded = False

    def register(
        self, name: str, factory: AdapterFactory, *, priority: int = 0, replace: bool = False
    ) -> None:
        """Register ``factory`` (a callable returning an :class:`Adapter`) under ``name``.

        Higher ``priority`` wins for ``"auto"``. Registering a taken name is an
        error unless ``replace=True``.
        """
        if not isinstance(name, str) or not name.isidentifier() or name == AUTO:
            raise ConfigError(
                f"backend name {name!r} is not allowed; allowed: a Python identifier other than 'auto'"
            )
        if not callable(factory):
            raise ConfigError(f"backend {name!r}: factory {factory!r} is not callable")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ConfigError(f"backend {name!r}: priority={priority!r} is not an integer")
        with self._lock:
            if name in self._entries and not replace:
                raise BackendError(f"backend {name!r} is already registered; pass replace=True to replace it")
            self._entries[name] = _Entry(name, factory, priority)

    def unregister(self, name: str) -> None:
        """Remove a registered backend."""
        with self._lock:
            self._load_entry_points()
            if name not in self._entries:
                raise self._unknown(name)
            del self._entries[name]

    def names(self) -> list[str]:
        """Registered names, highest priority first."""
        return [entry.name for entry in self._ordered()]

    def get(self, name: str = AUTO) -> Adapter:
        """The adapter registered as ``name``; ``"auto"`` picks the highest-priority available one.

        Raises :class:`UnknownBackendError` (listing the known names) for an unknown
        name and :class:`BackendUnavailableError` (with the reason) for one that
        cannot run here.
        """
        if not isinstance(name, str):
            raise ConfigError(f"backend={name!r} is not a string; allowed: {', '.join([AUTO, *self.names()])}")
        key = name.strip().lower()
        if key == AUTO:
            for entry in self._ordered():
                adapter = self._adapter(entry)
                if adapter.is_available():
                    return adapter
            raise BackendUnavailableError("no registered backend is available: " + self._reasons())
        with self._lock:
            self._load_entry_points()
            entry = self._entries.get(key)
        if entry is None:
            raise self._unknown(name)
        adapter = self._adapter(entry)
        reason = adapter.unavailable_reason()
        if reason is not None:
            raise BackendUnavailableError(f"backend {key!r} is not available: {reason}")
        return adapter

    def available(self) -> list[str]:
        """Names of the backends that can run here, highest priority first."""
        return [entry.name for entry in self._ordered() if self._adapter(entry).is_available()]

    def adapters(self) -> Iterator[Adapter]:
        """Every registered adapter, available or not, highest priority first."""
        for entry in self._ordered():
            yield self._adapter(entry)

    def trace_layouts(self) -> list[TraceLayout]:
        """The trace layout of every registered backend, highest priority first (nothing is probed)."""
        return [self._adapter(entry).layout for entry in self._ordered()]

    def describe(self) -> list[BackendInfo]:
        """Availability, reason and versions of every registered backend."""
        infos = []
        for entry in self._ordered():
            adapter = self._adapter(entry)
            reason = adapter.unavailable_reason()
            try:
                versions = adapter.versions()
            except Exception as exc:  # versions are informative only
                versions = {"error": f"{type(exc).__name__}: {exc}"}
            infos.append(
                BackendInfo(entry.name, entry.priority, reason is None, reason, adapter.description, versions)
            )
        return infos

    # -- internals ----------------------------------------------------------------
    def _ordered(self) -> list[_Entry]:
        with self._lock:
            self._load_entry_points()
            entries = list(self._entries.values())
        return sorted(entries, key=lambda entry: -entry.priority)

    def _adapter(self, entry: _Entry) -> Adapter:
        with self._lock:
            if entry.adapter is None:
                adapter = entry.factory()
                if not isinstance(adapter, Adapter):
                    raise BackendError(
                        f"backend {entry.name!r}: factory returned {adapter!r}, not an npuprofile Adapter"
                    )
                adapter.name = entry.name  # the registered name is the adapter's identity
                entry.adapter = adapter
            return entry.adapter

    def _unknown(self, name: str) -> UnknownBackendError:
        return UnknownBackendError(
            f"unknown backend {name!r}; known: {', '.join([AUTO, *self.names()])}"
        )

    def _reasons(self) -> str:
        return "; ".join(f"{e.name}: {self._adapter(e).unavailable_reason()}" for e in self._ordered())

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        from importlib.metadata import entry_points

        for point in entry_points(group=ENTRY_POINT_GROUP):
            if point.name in self._entries:
                continue
            try:
                factory = point.load()
                priority = int(getattr(factory, "priority", 0))
                self.register(point.name, factory, priority=priority)
            except Exception as exc:  # a broken plugin must not break profiling
                logger.warning("npuprofile: entry point %r (%s) failed to load: %s", point.name, point.value, exc)

    def reset(self) -> None:
        """Forget every registration and re-register the built-in adapters (for tests)."""
        with self._lock:
            self._entries.clear()
            self._entry_points_loaded = False
        register_builtins(self)


def register_builtins(registry: Registry) -> None:
    """Register the adapters that ship with npuprofile."""
    from npuprofile.backends.cpu import CpuAdapter

    registry.register("cpu", CpuAdapter, priority=0, replace=True)
    for name, module, cls, priority in _OPTIONAL_BUILTINS:
        registry.register(name, _lazy_factory(module, cls), priority=priority, replace=True)


# Device adapters: checked before CPU by "auto"; NPU before CUDA because
# torch_npu can alias torch.cuda to the NPU.
_OPTIONAL_BUILTINS: list[tuple[str, str, str, int]] = [
    ("npu", ".npu.adapter", "NpuAdapter", 20),
    ("cuda", ".cuda", "CudaAdapter", 10),
]


def _lazy_factory(module: str, cls: str) -> AdapterFactory:
    def factory() -> Adapter:
        from importlib import import_module

        return getattr(import_module(module, __package__), cls)()

    factory.__name__ = f"{cls}_factory"
    return factory


backends = Registry()
register_builtins(backends)
