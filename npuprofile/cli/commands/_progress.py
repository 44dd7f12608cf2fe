"""A small progress bar for long command-line work, drawn on stderr only when it is a terminal."""

from __future__ import annotations

import sys
import time
from typing import IO


class ProgressBar:
    """Call it with ``(done, total)`` byte counts; it redraws at most ten times a second.

    It stays silent when ``quiet`` is set, when the stream is not a terminal, and
    for work that finishes within ``delay`` seconds (no flash on small files).
    """

    def __init__(self, label: str, *, quiet: bool = False, stream: IO[str] | None = None,
                 delay: float = 0.5, width: int = 30) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = not quiet and _is_tty(self.stream)
        self.delay = delay
        self.width = width
        self.started = time.monotonic()
        self._last = 0.0
        self._drawn = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.started < self.delay or (now - self._last < 0.1 and done < total):
            return
        self._last = now
        fraction = done / total if total else 1.0
        filled = int(self.width * fraction)
        rate = done / max(now - self.started, 1e-9) / 1e6
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {100 * fraction:5.1f}% "
                          f"{done / 1e6:.1f}/{total / 1e6:.1f} MB {rate:.0f} MB/s")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Clear the bar's line, if one was drawn."""
        if self._drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._drawn = False

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_tty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
