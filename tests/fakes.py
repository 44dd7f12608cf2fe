"""Test doubles: clocks the test drives, and a backend around them.

``ManualClock`` is a host clock (marks are ``int`` nanoseconds); ``ManualEventClock``
is a device-style clock whose marks are events readable only after ``flush()``.
Both move when the test calls ``advance(ns)``, and by ``tick`` nanoseconds at
every mark (``tick=-10`` makes a clock that runs backwards).
"""

from __future__ import annotations

from typing import Any

from npuprofile.backends.base import Timer
from npuprofile.backends.cpu import CpuBackend


class ManualClock(Timer):
    """A host clock that only moves when the test says so (``advance``) or by ``tick`` per mark."""

    host_clock = True

    def __init__(self, now: int = 0, tick: int = 0) -> None:
        self.now = now
        self.tick = tick
        self.flushes = 0

    def mark(self) -> Any:
        self.now += self.tick
        return self.now

    def advance(self, ns: int) -> None:
        self.now += ns

    def flush(self) -> None:
        self.flushes += 1


class ManualEvent:
    """A mark of ``ManualEventClock``: the clock's time, readable once the clock was flushed."""

    __slots__ = ("time", "readable")

    def __init__(self, time: int) -> None:
        self.time = time
        self.readable = False


class ManualEventClock(ManualClock):
    """A device-style clock: marks are events, readable only after a flush (like CUDA events)."""

    host_clock = False

    def __init__(self, now: int = 0, tick: int = 0) -> None:
        super().__init__(now, tick)
        self.pending: list[ManualEvent] = []

    def mark(self) -> Any:
        self.now += self.tick
        event = ManualEvent(self.now)
        self.pending.append(event)
        return event

    def flush(self) -> None:
        self.flushes += 1
        for event in self.pending:
            event.readable = True
        self.pending.clear()

    def elapsed_ns(self, start: Any, end: Any) -> int:
        if not (start.readable and end.readable):
            raise AssertionError("elapsed_ns read an event before flush()")
        return int(end.time - start.time)


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
