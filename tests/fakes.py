"""Test doubles: an adapter whose clock the test drives."""

from __future__ import annotations

from typing import Any

from npuprofile.adapters.base import Timer
from npuprofile.adapters.cpu import CpuAdapter


class ManualClock(Timer):
    """A clock that only moves when the test says so (``advance``)."""

    host_clock = True

    def __init__(self) -> None:
        self.now = 0

    def mark(self) -> int:
        return self.now

    def advance(self, ns: int) -> None:
        self.now += ns


class ManualClockAdapter(CpuAdapter):
    """The CPU adapter with a manual clock and counted synchronize() calls."""

    name = "manual"

    def __init__(self) -> None:
        self.clock = ManualClock()
        self.syncs = 0

    def timer(self) -> Timer:
        return self.clock

    def synchronize(self) -> None:
        self.syncs += 1


def register_manual(registry: Any) -> ManualClockAdapter:
    """Register a fresh ManualClockAdapter as backend 'manual' and return it."""
    adapter = ManualClockAdapter()
    registry.register("manual", lambda: adapter, priority=-1, replace=True)
    return adapter
