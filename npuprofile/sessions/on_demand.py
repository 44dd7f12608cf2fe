"""Profiling on demand: an armed process profiles its next N steps when triggered.

``on_demand(...)`` arms the process; the loop calls :meth:`OnDemand.step` (or
iterates through :meth:`OnDemand.steps`). Two triggers:

- a control file, written by ``npuprofile trigger DIR --steps N`` into
  ``DIR/npuprofile-on-demand/trigger.json``. ``step()`` looks at it at most every
  ``poll_interval`` seconds (one ``stat``); a trigger with an id not seen before
  starts a capture. Triggers written before the process armed are ignored.
- a signal of the user's choice (``signal="SIGUSR1"``); a Python handler that was
  installed before is still called.

A capture is an ordinary session with the options given to ``on_demand`` (same
keywords as :func:`~npuprofile.session`), under the run id ``<run_id>-<trigger>``
so each capture's traces group together across ranks. While a capture runs,
another trigger is refused: ``npuprofile trigger`` reports it (each armed
process keeps a state file beside the trigger), and a signal is answered with a
logged warning. Ranks not selected (``ranks=``) never poll and never capture.

Triggers written at the same moment are serialised by an exclusive lock on
``DIR/npuprofile-on-demand/trigger.lock``: exactly one of them is accepted, the
others see it pending and are refused. A state file that is not one an armed
process wrote (a pid that is no process id, not JSON) is skipped with one
logged line. In a forked child an armed process is disarmed (the parent's
capture, state file and handler stay the parent's).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal as signal_module
import socket
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, TypeVar

from npuprofile.errors import ConfigError, NpuProfileError, SessionError
from npuprofile.sessions import config as _config
from npuprofile.sessions.files import atomic_write_text, safe_name
from npuprofile.sessions.session import Session, session

logger = logging.getLogger("npuprofile")

T = TypeVar("T")

CONTROL_DIR = "npuprofile-on-demand"
TRIGGER_FILE = "trigger.json"
LOCK_FILE = "trigger.lock"
STATE_SUFFIX = ".state.json"
DEFAULT_STEPS = 5
DEFAULT_POLL_INTERVAL = 0.5
#: The longest ``poll_interval``, in seconds (an hour).
MAX_POLL_INTERVAL = 3600.0
#: Seconds ``npuprofile trigger`` waits for another trigger being written at the same moment.
LOCK_WAIT = 10.0
#: The largest state file read (an armed process writes well under a kilobyte).
STATE_MAX_BYTES = 1 << 20
_UNCATCHABLE = {getattr(signal_module, n) for n in ("SIGKILL", "SIGSTOP") if hasattr(signal_module, n)}


def control_dir(output_dir: str | os.PathLike[str]) -> Path:
    """Where triggers and the armed processes' state files live for ``output_dir``."""
    return Path(output_dir).expanduser() / CONTROL_DIR


def parse_signal(value: Any, source: str) -> signal_module.Signals | None:
    """Parse a signal given as a name (``"SIGUSR1"``, ``"USR1"``), a number, or ``None``/``""`` for none."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "off")):
        return None
    if isinstance(value, signal_module.Signals):
        chosen = value
    elif isinstance(value, int) and not isinstance(value, bool):
        try:
            chosen = signal_module.Signals(value)
        except ValueError:
            raise ConfigError(f"{source}={value!r} is not a signal number on this system") from None
    elif isinstance(value, str):
        name = value.strip().upper()
        name = name if name.startswith("SIG") else "SIG" + name
        found: signal_module.Signals | None = getattr(signal_module.Signals, name, None) if name.isidentifier() else None
        if found is None:
            raise ConfigError(f"{source}={value!r} is not a signal; allowed: a name such as SIGUSR1, or a number")
        chosen = found
    else:
        raise ConfigError(f"{source}={value!r} is not a signal; allowed: a name such as SIGUSR1, or a number")
    if chosen in _UNCATCHABLE:
        raise ConfigError(f"{source}={value!r} cannot be caught; allowed: a catchable signal such as SIGUSR1")
    return chosen


def parse_poll_interval(value: Any, source: str) -> float:
    """Parse the seconds between looks at the trigger file: 0 to :data:`MAX_POLL_INTERVAL`."""
    return _config.parse_seconds(value, source, 0.0, MAX_POLL_INTERVAL)


def _setting(value: Any, name: str, default: Any, parse: Any, environ: Mapping[str, str]) -> Any:
    variable = "NPUPROFILE_ON_DEMAND_" + name.upper()
    if value is not None:
        return parse(value, name)
    raw = environ.get(variable, "").strip()
    return parse(raw, variable) if raw else default


class OnDemand:
    """An armed process. Call :meth:`step` once per step; :meth:`close` when done.

    ``captures`` lists the captures finished so far (trigger id, run id, steps,
    trace paths). Usable as a context manager and as an iterator wrapper.
    """

    def __init__(self, steps: int, signal: signal_module.Signals | None, poll_interval: float,
                 session_options: dict[str, Any]) -> None:
        probe = session(**session_options)  # validates every option now, not at the first trigger
        self.steps_per_capture = steps
        self.signal = signal
        self.poll_interval = poll_interval
        self.session_options = session_options
        self.selected = probe.selected
        self.rank = probe.rank
        self.run_id = probe.run_id
        self.output_dir = probe.output_dir
        self.control = control_dir(probe.output_dir)
        self.state_path = self.control / f"{probe.file_stem}{STATE_SUFFIX}"
        self.captures: list[dict[str, Any]] = []
        self.closed = False
        self._armed_at = time.time()
        self._session: Session | None = None
        self._trigger_id: str | None = None
        self._left = 0
        self._next_poll = 0
        self._seen: tuple[int, int, int] | None = None
        self._handled: set[str] = set()
        self._signals = 0
        self._signal_count = 0
        self._previous: Any = None
        self._lock = threading.Lock()
        if not self.selected:
            logger.debug("npuprofile: rank %d not selected; on-demand profiling stays off here", self.rank)
            return
        self._ignore_existing_trigger()
        self._write_state()
        if signal is not None:
            self._install_signal(signal)
        import atexit

        atexit.register(self.close)
        _ARMED.add(self)

    # -- the loop ------------------------------------------------------------------------
    @property
    def capturing(self) -> bool:
        """True while a capture runs."""
        return self._session is not None

    def step(self) -> None:
        """Mark the end of a step: advance a running capture, or look for a trigger (cheaply)."""
        if not self.selected or self.closed:
            return
        if self._session is not None:
            self._advance()
            return
        if self._signals:
            self._signals = 0
            self._signal_count += 1
            self._start(f"sig{self.signal.value if self.signal else 0}-{self._signal_count}",
                        self.steps_per_capture, f"signal {self.signal.name if self.signal else '?'}")
            return
        now = time.monotonic_ns()
        if now >= self._next_poll:
            self._next_poll = now + int(self.poll_interval * 1e9)
            self._poll()

    def steps(self, iterable: Iterable[T]) -> Iterator[T]:
        """Yield each item of ``iterable`` and call :meth:`step` after it."""
        for item in iterable:
            yield item
            self.step()

    def close(self) -> None:
        """Disarm: end a running capture (its traces are written), drop the state file and the signal handler."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
        if not self.selected:
            return
        if self._session is not None:
            logger.info("npuprofile: on-demand capture %s cut short by close()", self._trigger_id)
            self._finish()
        if self.signal is not None and threading.current_thread() is threading.main_thread():
            try:
                if signal_module.getsignal(self.signal) == self._on_signal:
                    signal_module.signal(self.signal, self._previous)
            except (ValueError, OSError, TypeError):
                pass
        try:
            self.state_path.unlink()
        except OSError:
            pass

    def _disarm_after_fork(self) -> None:
        """In a forked child: this object is the parent's; do nothing more (no capture, no file)."""
        self._lock = threading.Lock()
        self._session = None
        self.closed = True

    def __enter__(self) -> "OnDemand":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "capturing" if self.capturing else "armed" if self.selected else "off"
        return f"<OnDemand {state} rank={self.rank} captures={len(self.captures)}>"

    # -- triggers -------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signals += 1  # only a counter here: the loop acts on it at the next step()
        previous = self._previous
        if callable(previous):
            previous(signum, frame)

    def _install_signal(self, chosen: signal_module.Signals) -> None:
        if threading.current_thread() is not threading.main_thread():
            raise SessionError(f"on_demand(signal={chosen.name!r}) must be called from the main thread "
                               "(Python sets signal handlers only there)")
        self._previous = signal_module.signal(chosen, self._on_signal)

    def _trigger_stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.control / TRIGGER_FILE)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_ino, st.st_size)

    def _ignore_existing_trigger(self) -> None:
        self._seen = self._trigger_stat()
        trigger = read_trigger(self.control)
        if trigger is not None and _number(trigger.get("written_at")) < self._armed_at:
            self._handled.add(str(trigger.get("id")))

    def _poll(self) -> None:
        seen = self._trigger_stat()
        if seen is None or seen == self._seen:
            return
        self._seen = seen
        trigger = read_trigger(self.control)
        if trigger is None:
            return
        trigger_id = str(trigger.get("id"))
        if trigger_id in self._handled:
            return
        steps = trigger.get("steps")
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            steps = self.steps_per_capture
        self._start(trigger_id, steps, "trigger file")

    # -- captures --------------------------------------------------------------------------
    def _start(self, trigger_id: str, steps: int, source: str) -> None:
        self._handled.add(trigger_id)
        suffix = safe_name(trigger_id, 24)
        run_id = f"{self.run_id[:_config.RUN_ID_MAX - 1 - len(suffix)]}-{suffix}"
        options = dict(self.session_options, run_id=run_id)
        self._trigger_id, self._left = trigger_id, steps
        self._write_state()  # announce the capture first: starting a profiler can take a second
        try:
            capture = session(**options).start()
        except NpuProfileError as exc:
            logger.warning("npuprofile: on-demand trigger %s (%s) not started: %s", trigger_id, source, exc)
            self._trigger_id, self._left = None, 0
            self._write_state()
            return
        logger.info("npuprofile: on-demand capture %s (%s): profiling the next %d steps", trigger_id, source, steps)
        self._session = capture

    def _advance(self) -> None:
        capture = self._session
        assert capture is not None
        capture.step()
        self._left -= 1
        if self._signals:
            self._signals = 0
            logger.warning(
                "npuprofile: on-demand trigger (signal %s) refused: capture %s is still running (%d of %d steps left)",
                self.signal.name if self.signal else "?", self._trigger_id, self._left, capture.step_count + self._left,
            )
        if self._left <= 0:
            self._finish()

    def _finish(self) -> None:
        capture = self._session
        assert capture is not None
        self._session = None
        try:
            capture.stop()
        finally:
            self.captures.append({
                "trigger": self._trigger_id, "run_id": capture.run_id, "steps": capture.step_count,
                "traces": [str(p) for p in capture.trace_paths],
            })
            logger.info("npuprofile: on-demand capture %s done: %d steps, %d trace(s)", self._trigger_id,
                        capture.step_count, len(capture.trace_paths))
            self._trigger_id = None
            self._seen = None  # look at the trigger file afresh: one may have been forced meanwhile
            self._write_state()

    def _write_state(self) -> None:
        state = {
            "pid": os.getpid(), "host": socket.gethostname(), "rank": self.rank, "run_id": self.run_id,
            "armed_at": self._armed_at, "capturing": self._trigger_id, "steps_left": self._left,
            "handled": sorted(self._handled)[-50:], "updated_at": time.time(),
        }
        try:
            atomic_write_text(self.state_path, json.dumps(state) + "\n")
        except OSError as exc:
            logger.warning("npuprofile: cannot write the on-demand state file %s: %s", self.state_path, exc)


def on_demand(
    *,
    steps: int | None = None,
    signal: str | int | None = None,
    poll_interval: float | None = None,
    **session_options: Any,
) -> OnDemand:
    """Arm this process for on-demand profiling; returns the :class:`OnDemand` whose ``step()`` the loop calls.

    ``steps``: steps a signal-triggered capture profiles (a trigger file may say
    otherwise); ``signal``: a signal that triggers a capture (none by default);
    ``poll_interval``: seconds between looks at the trigger file. Their
    variables are ``NPUPROFILE_ON_DEMAND_STEPS``, ``NPUPROFILE_ON_DEMAND_SIGNAL``
    and ``NPUPROFILE_ON_DEMAND_POLL_INTERVAL``. Every other keyword is a
    :func:`~npuprofile.session` option, used for each capture.
    """
    env = os.environ
    chosen_steps = _setting(steps, "steps", DEFAULT_STEPS, lambda v, s: _config.parse_int(v, s, 1), env)
    chosen_signal = _setting(signal, "signal", None, parse_signal, env)
    interval = _setting(poll_interval, "poll_interval", DEFAULT_POLL_INTERVAL, parse_poll_interval, env)
    if "run_id" in session_options and session_options["run_id"] is not None:
        session_options["run_id"] = _config.parse_run_id(session_options["run_id"], "run_id")
    return OnDemand(chosen_steps, chosen_signal, interval, session_options)


_ARMED: "weakref.WeakSet[OnDemand]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for armed in list(_ARMED):
        armed._disarm_after_fork()
    _ARMED.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# -- the trigger side (used by ``npuprofile trigger``) -----------------------------------------


def read_trigger(control: Path) -> dict[str, Any] | None:
    """The trigger file's content, or ``None`` when absent or unreadable."""
    try:
        data = json.loads((control / TRIGGER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def armed_processes(output_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The state of each process armed on ``output_dir`` (state files of dead local processes are removed)."""
    control = control_dir(output_dir)
    states = []
    host = socket.gethostname()
    for path in sorted(control.glob(f"*{STATE_SUFFIX}")):
        state = _read_state(path)
        if state is None:
            continue
        if state.get("host") == host and not _alive(state["pid"]):
            logger.info("npuprofile: removing the state file of exited process %s: %s", state.get("pid"), path)
            try:
                path.unlink()
            except OSError:
                pass
            continue
        state["path"] = str(path)
        states.append(state)
    return states


def _read_state(path: Path) -> dict[str, Any] | None:
    """One armed process's state, or ``None`` (logged in one line) when the file is not one we wrote."""
    try:
        if path.stat().st_size > STATE_MAX_BYTES:
            raise ValueError(f"larger than {STATE_MAX_BYTES} bytes")
        state = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(state, dict):
            raise ValueError(f"a JSON {type(state).__name__}, not an object")
        pid = state.get("pid")
        if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid < 2**31:
            raise ValueError(f"pid {_one_line(repr(pid))} is not a process id")
        if not isinstance(state.get("handled", []), list):
            raise ValueError(f"handled {_one_line(repr(state.get('handled')))} is not a list")
    except (OSError, ValueError, RecursionError) as exc:
        logger.warning("npuprofile: ignoring malformed on-demand state file %s: %s", path, _one_line(str(exc)))
        return None
    return state


def _one_line(text: str) -> str:
    lines = text.splitlines()
    return (lines[0] if lines else "")[:200]


def _number(value: Any) -> float:
    """A finite number from a state or trigger field, else 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return 0.0
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_trigger(output_dir: str | os.PathLike[str], steps: int | None = None, *,
                  force: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Ask the processes armed on ``output_dir`` to profile their next ``steps`` steps.

    Returns the trigger written and the armed processes found. Refused (with
    :class:`~npuprofile.errors.SessionError`) while a capture runs or while an
    earlier trigger has not been picked up yet, unless ``force``.
    """
    if steps is not None:
        steps = _config.parse_int(steps, "--steps", 1)
    control = control_dir(output_dir)
    with _trigger_lock(control):
        return _write_trigger_locked(control, output_dir, steps, force)


@contextlib.contextmanager
def _trigger_lock(control: Path) -> Iterator[None]:
    """Hold the exclusive lock under which a trigger is checked and written (waits up to :data:`LOCK_WAIT`)."""
    import fcntl

    from npuprofile.sessions.files import make_dirs

    make_dirs(control)
    fd = os.open(control / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o664)
    try:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SessionError(f"trigger refused: another trigger has held {control / LOCK_FILE} "
                                       f"for {LOCK_WAIT:g} s; try again") from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)  # releases the lock


def _write_trigger_locked(control: Path, output_dir: str | os.PathLike[str], steps: int | None,
                          force: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    states = armed_processes(output_dir)
    if not force:
        busy = [s for s in states if s.get("capturing")]
        if busy:
            ranks = ",".join(str(s.get("rank")) for s in busy)
            raise SessionError(
                f"trigger refused: capture {busy[0]['capturing']} is still running on rank(s) {ranks} "
                f"({busy[0].get('steps_left')} steps left on rank {busy[0].get('rank')}); "
                "wait for it to finish, or pass --force"
            )
        previous = read_trigger(control)
        if previous is not None:
            written = _number(previous.get("written_at"))
            eligible = [s for s in states if _number(s.get("armed_at")) <= written]
            if eligible and not any(str(previous.get("id")) in s.get("handled", []) for s in eligible):
                raise SessionError(
                    f"trigger refused: trigger {previous.get('id')} is still pending (no armed process has "
                    "picked it up yet); wait a moment, or pass --force"
                )
    trigger = {
        "id": time.strftime("od%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4],
        "steps": steps,
        "written_at": time.time(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    atomic_write_text(control / TRIGGER_FILE, json.dumps(trigger) + "\n")
    return trigger, states
