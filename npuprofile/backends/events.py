"""A region clock made of device events, shared by the accelerator backends.

Each mark records a timing event on the current stream and returns it; the
host never waits while marks are taken. :meth:`EventTimer.flush` waits once,
for the newest event, after which every earlier event on that stream has
completed too and ``elapsed_ns`` can read any pair.
"""

from __future__ import annotations

from typing import Any, Callable

from npuprofile.backends.base import Timer

_MS_TO_NS = 1_000_000


class EventTimer(Timer):
    """Times regions with device events (``torch.cuda.Event``, ``torch.npu.Event``, ...).

    ``make_event`` builds one event with timing enabled; ``current_stream``
    returns the stream to record it on (``None`` records on the current one).
    """

    host_clock = False

    def __init__(self, make_event: Callable[[], Any], current_stream: Callable[[], Any] | None = None) -> None:
        self._make_event = make_event
        self._current_stream = current_stream
        self._last: Any = None

    def mark(self) -> Any:
        """Record a timing event on the current stream now (no synchronization)."""
        event = self._make_event()
        if self._current_stream is None:
            event.record()
        else:
            event.record(self._current_stream())
        self._last = event
        return event

    def flush(self) -> None:
        """Wait for the newest event, so every mark taken so far can be read."""
        last = self._last
        if last is not None:
            last.synchronize()

    def elapsed_ns(self, start: Any, end: Any) -> int:
        """Device time between two marks, in nanoseconds (events report milliseconds)."""
        return int(round(start.elapsed_time(end) * _MS_TO_NS))
