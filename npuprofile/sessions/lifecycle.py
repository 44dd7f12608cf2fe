"""Flush running sessions when the interpreter exits or the process is told to terminate.

Ctrl-C raises ``KeyboardInterrupt``, which stops sessions through their
``with`` blocks or, failing that, through the exit hook. SIGTERM's default
action would end the process without running exit hooks, so a handler stops
the sessions first, then hands the signal on: to the previous Python handler,
or back to the default action, so the process still ends as it would have.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
from typing import Any, Protocol

logger = logging.getLogger("npuprofile")


class Flushable(Protocol):
    """What exit and SIGTERM flush: a running session, or a controller's exit hook."""

    def stop(self) -> Any:
        """Finish and write everything (safe to call twice)."""


_SESSIONS: "list[Flushable]" = []
_LOCK = threading.Lock()
_INSTALLED = False
_PREVIOUS: dict[int, Any] = {}
HANDLED_SIGNALS = (signal.SIGTERM,)


def track(session: Flushable) -> None:
    """Remember a running session so exit and SIGTERM can flush it."""
    with _LOCK:
        _SESSIONS.append(session)
    _install()


def untrack(session: Flushable) -> None:
    """Forget a stopped session."""
    with _LOCK:
        if session in _SESSIONS:
            _SESSIONS.remove(session)


def flush_all(reason: str) -> None:
    """Stop every running session (their traces and summaries are written)."""
    with _LOCK:
        running = list(_SESSIONS)
    for session in running:
        logger.info("npuprofile: %s with a session still running; saving what was collected", reason)
        try:
            session.stop()
        except Exception as exc:  # at exit, report and keep going
            logger.error("npuprofile: could not save session at %s: %s", reason, exc)


def _install() -> None:
    global _INSTALLED
    if _INSTALLED:
        return
    _INSTALLED = True
    atexit.register(flush_all, "interpreter exit")
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread; atexit still covers exit
    for signum in HANDLED_SIGNALS:
        try:
            _PREVIOUS[signum] = signal.signal(signum, _on_signal)
        except (ValueError, OSError) as exc:
            logger.debug("npuprofile: cannot handle %s: %s", signal.Signals(signum).name, exc)


def _on_signal(signum: int, frame: Any) -> None:
    flush_all(signal.Signals(signum).name)
    previous = _PREVIOUS.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    if previous == signal.SIG_IGN:
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
