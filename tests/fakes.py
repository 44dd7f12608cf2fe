"""Test doubles: a backend whose clock the test drives."""

from __future__ import annotations

from typing import Any

from npuprofile.backends.base import Timer
from npuprofile.backends.cpu import CpuBackend


class ManualClock(Timer):
    """A clock that only moves when the test says so (``advance``)."""

    host_clock = True

    def __init__(self) -> None:
        self.now = 0

    def mark(self) -> int:
        return self.now

    def advance(self, ns: int) -> None:
        self.now += ns


class ClockBackend(CpuBackend):
    """The CPU backend with a clock the test drives and counted synchronize() calls."""

    def __init__(self, clock: Timer) -> None:
        self.clock = clock
        self.syncs = 0

    def timer(self) -> Timer:
        return self.clock

    def synchronize(self) -> None:
        self.syncs += 1


def register_clock(registry: Any, name: str, clock: Timer) -> ClockBackend:
    """Register a fresh ClockBackend around ``clock`` as backend ``name`` and return it."""
    backend = ClockBackend(clock)
    registry.register(name, backend, priority=-1, replace=True)
    return backend


def register_manual(registry: Any) -> ClockBackend:
    """Register a ClockBackend with a fresh ManualClock as backend 'manual'."""
    return register_clock(registry, "manual", ManualClock())
