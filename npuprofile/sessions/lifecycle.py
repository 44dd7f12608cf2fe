"""Save running sessions when the interpreter exits, the process is told to stop, or it forks.

Two rules hold throughout, because torch crashes when either is broken: the
profiler is never called from a signal handler that interrupted it (torch
calls the trace export from ``step()`` and ``stop()``, and Python runs
handlers between any two bytecodes, so a handler can land in the middle of
it), and never from a thread other than the one that started it.

- Exit: an exit hook stops every running session (normal exit, ``sys.exit``,
  an uncaught ``KeyboardInterrupt``).
- SIGTERM: if the main thread is inside the session machinery (``start``,
  ``step``, ``stop``, a controller's ``step``), the signal is only marked; the
  machinery finishes (an export in progress completes and is renamed into
  place), then the signal is handled. Handling it saves every running session:
  one started on this thread is stopped here; one started on another thread is
  stopped by that thread at its next call into the session, and waited for;
  one whose thread does not come back in time, or has ended, gets its summary
  written without a profiler call (its last trace is lost, and the summary
  says so). Then the signal is handed on: to the Python handler that was
  installed before, or back to the default action, so the process ends by the
  signal (status -15, "143"), with partial files removed.
- SIGINT while the main thread is inside the machinery: the
  ``KeyboardInterrupt`` is raised when the machinery returns instead of inside
  it; ``with`` blocks and the exit hook then save the sessions as usual (and
  Python ends the process by SIGINT, "130").
- The wait is bounded by ``flush_timeout`` seconds (``NPUPROFILE_FLUSH_TIMEOUT``,
  the largest among the running sessions). A watchdog thread learns of SIGTERM
  at once through :func:`signal.set_wakeup_fd`, even while the main thread is
  blocked in native code and cannot run a Python handler. With nothing to save
  it ends the process at once; otherwise, when the handler has not started and
  the main thread has slept (not run) for :data:`HANDLER_GRACE` seconds, it
  writes the summaries itself and ends the process; and it ends the process
  when the handler's saving outlasts ``flush_timeout``. The watchdog acts only
  when SIGTERM's action would otherwise have been the default one
  (terminate): a handler of the user's keeps the say over what SIGTERM does.
- Fork: in the child, the parent's sessions become inert (no profiler call, no
  file written, nothing flushed at exit) and the parent's handlers are taken
  back; a session the child starts is its own, with its own pid in its names.

Where handlers come from: signal handlers and the wakeup file descriptor can
only be set from the main thread, so SIGTERM's handler and the wakeup pipe are
set when this module is imported there (``import npuprofile`` imports it: a
session started only on worker threads is covered), and again when a session
starts there; the watchdog thread itself starts with the first session (none
runs in a process that never profiles, so ``fork`` sees no extra thread).
SIGINT's handler is installed only while a session started on the main thread
runs. A handler is never installed over ``SIG_IGN`` or over one set outside
Python; a Python handler found in place is wrapped and still called. A
process imported npuprofile on a worker thread first gets its handlers when
a session starts on the main thread (or never; the exit hook still saves).
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterable, Protocol, TypeVar

logger = logging.getLogger("npuprofile")

F = TypeVar("F", bound=Callable[..., Any])


class Flushable(Protocol):
    """What exit and SIGTERM flush: a running session, or a controller's exit hook."""

    def stop(self) -> Any:
        """Finish and write everything (safe to call twice)."""


#: Signals whose handlers defer to the session machinery.
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: Seconds the watchdog waits for a sleeping main thread to run the SIGTERM handler before saving the
#: summaries itself (a main thread that is running, or waiting for a CPU, is waited for up to the flush timeout).
HANDLER_GRACE = 0.5
#: The share of the flush timeout spent waiting for sessions on other threads to stop themselves.
WAIT_SHARE = 0.75

_LOCK = threading.RLock()  # re-entrant: a handler may run while the main thread holds it
_CHANGED = threading.Condition(_LOCK)
_SESSIONS: "list[Flushable]" = []
_OWNERS: "dict[Flushable, threading.Thread | None]" = {}
_STOP_REQUESTED: "set[Flushable]" = set()
_PENDING: list[int] = []
_PREVIOUS: dict[int, Any] = {}
_EXIT_HOOKED = False
_HANDLER_RUNS = [0]  # SIGTERM handler entries, for the watchdog
_TRACED = [False]  # a tracing session ran in this process (inherited by forked children)


# -- the sessions ------------------------------------------------------------------------------
def track(session: Flushable, *, owned: bool = True) -> None:
    """Remember a running session so exit and signals save it.

    ``owned``: only the thread calling this may drive it (a session's
    profiler); a flushable that hands work to its own thread (a controller)
    passes ``False`` and is stopped from whichever thread handles the signal.
    """
    with _LOCK:
        _SESSIONS.append(session)
        _OWNERS[session] = threading.current_thread() if owned else None
        config = getattr(session, "config", None)
        _TRACED[0] = _TRACED[0] or bool(getattr(config, "trace", False))
    install()
    _Watchdog.start_thread()


def untrack(session: Flushable) -> None:
    """Forget a stopped session."""
    with _CHANGED:
        if session in _SESSIONS:
            _SESSIONS.remove(session)
        _OWNERS.pop(session, None)
        _STOP_REQUESTED.discard(session)
        _CHANGED.notify_all()
        last = not _SESSIONS
    if last and threading.current_thread() is threading.main_thread():
        _restore_handler(signal.SIGINT)  # Ctrl-C needs deferring only while a session runs


def running() -> "list[Flushable]":
    """The sessions running now."""
    with _LOCK:
        return list(_SESSIONS)


def machinery(method: F) -> F:
    """Mark a method that drives the profiler: signals wait until it returns.

    When the outermost such call on a thread returns, a stop requested from
    another thread is carried out here (on the thread that owns the profiler),
    then a signal that arrived meanwhile is handled. The mark costs one
    ``try``/``finally`` a call: whether a signal landed inside the machinery is
    read from the interrupted frames, only when a signal arrives.
    """

    def wrapper(owner: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(owner, *args, **kwargs)
        finally:
            if _PENDING or _STOP_REQUESTED:
                _after_machinery(owner)

    _MACHINERY_CODES.add(wrapper.__code__)
    return functools.wraps(method)(wrapper)  # type: ignore[return-value]


#: The code of :func:`machinery`'s wrappers: a frame running it is inside the session machinery.
_MACHINERY_CODES: set[Any] = set()


def _inside_machinery(frame: Any) -> bool:
    """Whether ``frame`` or one of its callers is a :func:`machinery` call."""
    while frame is not None:
        if frame.f_code in _MACHINERY_CODES:
            return True
        frame = frame.f_back
    return False


def _after_machinery(owner: Any) -> None:
    """A machinery call returns while a stop or a signal waits: act on it if no outer machinery call runs."""
    if _inside_machinery(sys._getframe(2)):  # the wrapper's caller and up
        return
    if owner in _STOP_REQUESTED:
        _STOP_REQUESTED.discard(owner)
        _stop_logged(owner, "a stop requested by a signal")
    if _PENDING and threading.current_thread() is threading.main_thread():
        _deliver_pending()


def flush_timeout(sessions: "Iterable[Flushable] | None" = None) -> float:
    """Seconds a signal waits for sessions to be saved: the largest ``flush_timeout`` among them.

    Without a session that sets one: ``NPUPROFILE_FLUSH_TIMEOUT``, else the default.
    """
    chosen: list[float] = []
    for session in running() if sessions is None else sessions:
        seconds = getattr(getattr(session, "config", None), "flush_timeout", None)
        if isinstance(seconds, float):
            chosen.append(seconds)
    if chosen:
        return max(chosen)
    from npuprofile.errors import ConfigError
    from npuprofile.sessions.config import DEFAULT_FLUSH_TIMEOUT, env_name, parse_flush_timeout

    variable = env_name("flush_timeout")
    raw = os.environ.get(variable, "").strip()
    try:
        return parse_flush_timeout(raw, variable) if raw else DEFAULT_FLUSH_TIMEOUT
    except ConfigError as exc:
        logger.warning("npuprofile: %s; using %ss", exc, DEFAULT_FLUSH_TIMEOUT)
        return DEFAULT_FLUSH_TIMEOUT


def flush_all(reason: str, timeout: float | None = None, *,
              unresponsive: "Iterable[threading.Thread]" = ()) -> None:
    """Save every running session within ``timeout`` seconds (default: :func:`flush_timeout`).

    Sessions owned by this thread (or by none) are stopped here; those owned by
    another live thread are asked to stop at their next call into the session
    and waited for; the rest (owner ended, listed in ``unresponsive``, or too
    slow) have their summaries written without a profiler call.
    """
    sessions = running()
    if not sessions:
        return
    # Other threads get WAIT_SHARE of the time; the rest is left for writing the summaries of those
    # that did not come back, before the watchdog ends the process at the full timeout.
    deadline = time.monotonic() + WAIT_SHARE * (flush_timeout(sessions) if timeout is None else timeout)
    me = threading.current_thread()
    stuck = set(unresponsive)
    waiting = []
    for session in sessions:
        owner = _OWNERS.get(session, me)
        if owner is None or owner is me:
            _stop_logged(session, reason)
        elif owner.is_alive() and owner not in stuck:
            _STOP_REQUESTED.add(session)
            waiting.append(session)
        else:
            why = "its thread has ended" if not owner.is_alive() else "its thread is blocked"
            _save_summary_only(session, f"{reason}: {why}")
    with _CHANGED:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not any(s in _SESSIONS and _alive_owner(s) for s in waiting):
                break
            _CHANGED.wait(min(left, 0.05))
    for session in waiting:
        if session not in _OWNERS:
            continue  # stopped by its own thread
        late = "has ended" if not _alive_owner(session) else "did not reach the session within the flush timeout"
        _save_summary_only(session, f"{reason}: its thread {late}")


def _alive_owner(session: Flushable) -> bool:
    owner = _OWNERS.get(session)
    return owner is not None and owner.is_alive()


def _stop_logged(session: Flushable, reason: str) -> None:
    logger.info("npuprofile: %s with a session still running; saving what was collected", reason)
    try:
        session.stop()
    except Exception as exc:  # on the way out: report and keep going
        logger.error("npuprofile: could not save session at %s: %s", reason, exc)


def _save_summary_only(session: Flushable, reason: str, wait: float = 1.0) -> None:
    save = getattr(session, "_save_without_profiler", None)
    if save is None:
        _stop_logged(session, reason)
        return
    logger.warning("npuprofile: %s; writing the session summary without the last trace", reason)
    try:
        save(reason, wait)
    except Exception as exc:
        logger.error("npuprofile: could not save the session summary (%s): %s", reason, exc)
    untrack(session)


# -- signal handlers ----------------------------------------------------------------------------
def install(signals: Iterable[int] = HANDLED_SIGNALS) -> None:
    """Install the exit hook, and the signal handlers when on the main thread (else a later call does).

    At import only SIGTERM is handled; SIGINT is handled while a session started
    on the main thread runs (so Ctrl-C is left alone, e.g. for ``asyncio.run``, otherwise).
    """
    global _EXIT_HOOKED
    with _LOCK:
        if not _EXIT_HOOKED:
            _EXIT_HOOKED = True
            atexit.register(flush_all, "interpreter exit")
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for signum in signals:
            _install_handler(signum)
        if signal.getsignal(signal.SIGTERM) is _on_signal:
            _Watchdog.prepare()


def _install_handler(signum: int) -> None:
    try:
        current = signal.getsignal(signum)
    except (ValueError, OSError):
        return
    if current is _on_signal:
        return
    if signum == signal.SIGINT and not callable(current):
        return  # Ctrl-C set to the default action or ignored by the user: leave it
    if current is None or current == signal.SIG_IGN:
        return  # set outside Python, or ignored on purpose: not ours to change
    _PREVIOUS[signum] = current  # before the handler can run
    try:
        signal.signal(signum, _on_signal)
    except (ValueError, OSError) as exc:
        logger.debug("npuprofile: cannot handle %s: %s", signal.Signals(signum).name, exc)


def _restore_handler(signum: int) -> None:
    previous = _PREVIOUS.get(signum)
    try:
        if previous is not None and signal.getsignal(signum) is _on_signal:
            signal.signal(signum, previous)
            del _PREVIOUS[signum]
    except (ValueError, OSError, TypeError):
        pass


def _on_signal(signum: int, frame: Any) -> None:
    if signum == signal.SIGTERM:
        _HANDLER_RUNS[0] += 1
    if _inside_machinery(frame):  # the main thread is inside the profiler: handle it once that returns
        _PENDING.append(signum)
        logger.debug("npuprofile: %s arrived inside the profiler; handled when it returns",
                     signal.Signals(signum).name)
        return
    _handle(signum, frame)


def _deliver_pending() -> None:
    while _PENDING:
        _handle(_PENDING.pop(0), None)


def _handle(signum: int, frame: Any) -> None:
    previous = _PREVIOUS.get(signum, signal.SIG_DFL)
    if signum != signal.SIGINT:  # Ctrl-C raises KeyboardInterrupt: with blocks and the exit hook save
        flush_all(signal.Signals(signum).name)
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        die_by(signum)


def die_by(signum: int) -> None:
    """End the process by ``signum``'s default action, so its exit status names the signal."""
    files = sys.modules.get("npuprofile.sessions.files")  # loaded if anything was being written
    if files is not None:
        files.remove_partial_files()
    logging.shutdown()
    try:
        signal.signal(signum, signal.SIG_DFL)
    except ValueError:  # not the main thread: reset the action below Python
        _reset_to_default(signum)
    os.kill(os.getpid(), signum)
    time.sleep(1.0)  # the signal is blocked here; leave with the status a shell reports for it
    os._exit(128 + signum)


def _reset_to_default(signum: int) -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.signal.restype = ctypes.c_void_p
        libc.signal.argtypes = (ctypes.c_int, ctypes.c_void_p)
        libc.signal(signum, None)  # SIG_DFL is the null handler
    except (OSError, AttributeError):
        os._exit(128 + signum)


class _Watchdog:
    """A thread that sees SIGTERM arrive even while the main thread cannot run Python code."""

    instance: "_Watchdog | None" = None

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.write_fd, False)
        self.previous_fd = signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)
        self.thread: threading.Thread | None = None

    @classmethod
    def prepare(cls) -> None:
        """On the main thread: make the pipe the interpreter writes each signal's number to."""
        if cls.instance is None and hasattr(signal, "set_wakeup_fd"):
            try:
                cls.instance = cls()
            except (ValueError, OSError) as exc:
                logger.debug("npuprofile: no SIGTERM watchdog: %s", exc)

    @classmethod
    def start_thread(cls) -> None:
        """From any thread, once a session runs: start reading the pipe (signals from before are dropped)."""
        watchdog = cls.instance
        if watchdog is None or watchdog.thread is not None:
            return
        with _LOCK:
            if watchdog.thread is not None:
                return
            os.set_blocking(watchdog.read_fd, False)
            try:
                while os.read(watchdog.read_fd, 512):
                    pass
            except OSError:
                pass
            os.set_blocking(watchdog.read_fd, True)
            watchdog.thread = threading.Thread(target=watchdog._run, name="npuprofile-sigterm-watchdog",
                                               daemon=True)
            watchdog.thread.start()

    @classmethod
    def forget_in_child(cls) -> None:
        """After fork: the thread did not survive and the pipe is the parent's; take both back."""
        watchdog, cls.instance = cls.instance, None
        if watchdog is None:
            return
        try:
            current = signal.set_wakeup_fd(-1)
            signal.set_wakeup_fd(watchdog.previous_fd if current == watchdog.write_fd else current)
        except (ValueError, OSError):
            pass
        for fd in (watchdog.read_fd, watchdog.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass

    def _run(self) -> None:
        seen = 0
        while True:
            try:
                data = os.read(self.read_fd, 512)
            except OSError:
                return
            if not data:
                return
            if self.previous_fd >= 0:
                try:  # whoever set a wakeup fd before us still gets the bytes
                    os.write(self.previous_fd, data)
                except OSError:
                    pass
            for signum in data:
                if signum == signal.SIGTERM:
                    seen += 1
                    if _terminates(signum):
                        self._bound(signum, seen)

    def _bound(self, signum: int, seen: int) -> None:
        arrived = time.monotonic()
        sessions = running()
        if not sessions:
            die_by(signum)  # nothing to save: end as promptly as the default action
        timeout = flush_timeout(sessions)
        deadline = arrived + timeout
        waiting_since = time.monotonic()
        while _HANDLER_RUNS[0] < seen and time.monotonic() < deadline:
            if _main_thread_runnable():  # busy (or waiting for a CPU): it will run the handler
                waiting_since = time.monotonic()
            elif time.monotonic() - waiting_since >= min(HANDLER_GRACE, timeout):
                break  # asleep in native code: it will not
            time.sleep(0.01)
        if _HANDLER_RUNS[0] < seen:  # the main thread runs no Python code: save what can be saved from here
            flush_all(f"{signal.Signals(signum).name} while the main thread is blocked",
                      max(0.0, arrived + timeout - time.monotonic()), unresponsive=[threading.main_thread()])
            die_by(signum)
        while time.monotonic() < arrived + timeout:
            time.sleep(0.05)
        name = signal.Signals(signum).name
        logger.error("npuprofile: sessions not saved within flush_timeout=%ss of %s; ending the process",
                     timeout, name)
        for session in running():  # the handler's saving is stuck (an export that never ends, say)
            if hasattr(session, "_save_without_profiler"):
                _save_summary_only(session, f"{name}: not saved within flush_timeout", wait=0.2)
        die_by(signum)


def _main_thread_runnable() -> bool:
    """Whether the main thread is running or waiting for a CPU (Linux: its state in /proc), not asleep."""
    try:
        with open(f"/proc/self/task/{threading.main_thread().native_id}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError, AttributeError):
        return False  # cannot tell: rely on the grace period alone
    return state == b"R"


def _terminates(signum: int) -> bool:
    """Whether ``signum`` would end the process were npuprofile not there (so bounding it is ours to do)."""
    return signal.getsignal(signum) is _on_signal and _PREVIOUS.get(signum, signal.SIG_DFL) == signal.SIG_DFL


# -- fork -------------------------------------------------------------------------------------------
def _after_fork_in_child() -> None:
    global _LOCK, _CHANGED
    _LOCK = threading.RLock()
    _CHANGED = threading.Condition(_LOCK)
    parents = list(_SESSIONS)
    _SESSIONS.clear()
    _OWNERS.clear()
    _STOP_REQUESTED.clear()
    _PENDING.clear()
    for session in parents:
        disown = getattr(session, "_disown_after_fork", None)
        if disown is not None:
            disown()
    _Watchdog.forget_in_child()
    for signum in list(_PREVIOUS):
        _restore_handler(signum)
    if _TRACED[0]:
        _skip_native_exit_handlers()


def _skip_native_exit_handlers() -> None:
    """Make the child's C-level ``exit(status)`` end at once with ``status``, after Python's own exit steps.

    The profiler's native state does not survive a fork: the exit-time
    destructors that the parent registered (kineto's configuration loader joins
    a thread and destroys a condition variable that only the parent has) hang or
    abort (status -6) in the child. ``on_exit`` handlers run in reverse order of
    registration, so one registered now runs before them; it is ``_exit`` itself,
    which takes the status as its first argument. Python's exit hooks and stream
    flushing have run by then.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        on_exit, end_now = libc.on_exit, libc._exit
    except (OSError, AttributeError):  # not glibc: nothing to do
        return
    on_exit.argtypes = (ctypes.c_void_p, ctypes.c_void_p)
    on_exit(ctypes.cast(end_now, ctypes.c_void_p), None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

if threading.current_thread() is threading.main_thread():
    install((signal.SIGTERM,))
