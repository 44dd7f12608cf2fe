"""Exception types raised by npuprofile.

Every error the library raises for a user mistake is a subclass of
:class:`NpuProfileError`, so callers can catch one type.
"""

from __future__ import annotations

__all__ = [
    "NpuProfileError",
    "ConfigError",
    "BackendError",
    "BackendUnavailableError",
    "UnknownBackendError",
    "SessionError",
    "RegionError",
    "TraceError",
]


class NpuProfileError(Exception):
    """Base class of every npuprofile error."""


class ConfigError(NpuProfileError, ValueError):
    """A keyword argument or environment variable has a value that is not allowed."""


class BackendError(NpuProfileError):
    """A backend could not do what was asked of it."""


class UnknownBackendError(BackendError, KeyError):
    """A backend name is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class BackendUnavailableError(BackendError):
    """A registered backend cannot run on this machine (missing device or library)."""


class SessionError(NpuProfileError, RuntimeError):
    """A session was used in a way its lifecycle does not allow."""


class RegionError(NpuProfileError, TypeError):
    """A region or the ``@profiled`` decorator was given something it cannot use."""


class TraceError(NpuProfileError):
    """A trace file is missing, malformed or not a profiler trace."""
