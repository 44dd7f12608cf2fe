"""A capture controller for serving engines: requests from any thread, captures run by the loop thread.

An engine makes one :class:`Controller` and calls :meth:`Controller.step` at
the start of each engine step, on the thread that runs the step's work.
Anything else (an HTTP handler, an RPC) calls :meth:`Controller.request` or
:meth:`Controller.stop`, which only queue what they ask for and return at
once. Every profiler call is made by ``step()`` on the loop thread, so the
profiler never sees a second thread.

A capture records exactly the engine steps it asked for: ``steps=N`` from
the next step, from engine step ``start_step`` or ``delay_steps`` after the
request, and with ``stages=("prefill", "decode")`` N steps of each stage, each
in its own trace and summary (steps of other stages are not recorded; the
stage comes from ``step(stage=...)``). The trace holds one ``ProfilerStep#<k>``
range per recorded engine step ``k`` and the summary counts those steps only.

At the end of a capture the loop thread pays only the profiler's own stop
and trace export; the summary, op table, compression, device analysis,
report and upload run on a background worker, and :meth:`Capture.wait`
returns once they are done. ``close()``, interpreter exit and SIGTERM finish
a running capture and write it.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import queue
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from npuprofile.backends.base import Backend, OpStat
from npuprofile.errors import ConfigError, NpuProfileError, SessionError
from npuprofile.sessions import budget as _budget
from npuprofile.sessions import config as _config
from npuprofile.sessions import lifecycle as _lifecycle
from npuprofile.sessions.coords import parse_stage
from npuprofile.sessions.distributed import default_run_id, rank_and_world_size
from npuprofile.sessions.session import TOP_OPS, Session, prepare
from npuprofile.sessions.trace_ops import read_ops
from npuprofile.summary.model import OpRow, Summary

__all__ = ["Capture", "Controller"]

logger = logging.getLogger("npuprofile")

DEFAULT_STEPS = 5
#: How long ``close()`` from another thread waits for the loop thread to end a capture itself, in seconds.
HANDOFF_SECONDS = 10.0
_NEVER = sys.maxsize
_FORBIDDEN = {
    "schedule": "a controller sets its own step windows: use request(steps=..., start_step=..., delay_steps=...)",
}


def parse_megabytes(value: Any, source: str) -> float | None:
    """Parse a size in MiB: a positive number, or ``None``/``""`` for no limit."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "off")):
        return None
    try:
        number = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        number = float("nan")
    if not number > 0 or number == float("inf"):
        raise ConfigError(f"{source}={value!r} is not allowed; allowed: a size in MiB > 0, or None for no limit")
    return number


def _setting(value: Any, variable: str, default: Any, parse: Callable[[Any, str], Any], name: str) -> Any:
    if value is not None:
        return parse(value, name)
    raw = os.environ.get(variable, "").strip()
    return parse(raw, variable) if raw else default


def _parse_stages(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else None
    if not items:
        raise ConfigError(f"stages={value!r} is not allowed; allowed: None, a stage name or a non-empty tuple of them")
    stages = tuple(parse_stage(item, "stages") for item in items)
    if len(set(stages)) != len(stages):
        raise ConfigError(f"stages={value!r} names a stage twice; allowed: distinct stage names")
    return stages  # type: ignore[return-value]


class Capture:
    """One requested capture, as :meth:`Controller.request` returns it; safe to read from any thread.

    ``wait()`` blocks until its files are written; ``done``, ``error``,
    ``files`` and ``summary()`` tell the outcome.
    """

    def __init__(self, name: str, run_id: str, steps: int, stages: tuple[str, ...] | None, start_step: int,
                 max_trace_mb: float | None, config: _config.Config, backend: Backend | None,
                 backend_options: Any, selected: bool) -> None:
        #: The capture's name (part of its run id).
        self.name = name
        #: The run id of its files: the controller's run id, then ``-<name>``.
        self.run_id = run_id
        #: Engine steps it records (per stage, when staged).
        self.steps = steps
        #: The stages it records, or ``None`` for every step.
        self.stages = stages
        #: The engine step it starts at (or later, when it waited for the capture before it).
        self.start_step = start_step
        #: Its size budget, in MiB.
        self.max_trace_mb = max_trace_mb
        #: Whether this rank records it (``ranks=`` / ``enabled=``).
        self.selected = selected
        self.config = config
        self.backend = backend
        self.backend_options = backend_options
        #: Why it failed or was cancelled, or ``None``.
        self.error: BaseException | None = None
        #: Whether it ended before it had recorded every step it asked for (``stop()``, ``close()``).
        self.cut_short = False
        self._files: list[str] = []
        self._summaries: dict[str | None, Summary] = {}
        self._state = "waiting"
        self._jobs = 0
        self._lock = threading.Lock()
        self._done = threading.Event()

    # -- outcome ---------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """``"waiting"`` (not started), ``"running"``, ``"finishing"`` (files being written) or ``"done"``."""
        return self._state

    @property
    def done(self) -> bool:
        """Whether every file is written (or the capture failed or was cancelled)."""
        return self._done.is_set()

    @property
    def files(self) -> list[str]:
        """Every file written so far: traces, summaries, snapshots, reports (URIs after an upload)."""
        with self._lock:
            return list(self._files)

    @property
    def summaries(self) -> dict[str | None, Summary]:
        """The summary of each stage (key ``None`` for a capture without stages), once done."""
        with self._lock:
            return dict(self._summaries)

    def wait(self, timeout: float | None = None) -> list[str]:
        """Block until the capture is done; return its files.

        Raises ``TimeoutError`` when ``timeout`` seconds pass first, and the
        capture's :attr:`error` when it failed or was cancelled.
        """
        if not self._done.wait(timeout):
            raise TimeoutError(f"capture {self.name!r} not done after {timeout} s (state: {self._state})")
        if self.error is not None:
            raise self.error
        return self.files

    def summary(self, stage: str | None = None) -> Summary:
        """The summary of the capture, or of one of its stages; after :meth:`wait`."""
        if not self.done:
            raise SessionError(f"capture {self.name!r} is {self._state}; call wait() first")
        summaries = self.summaries
        if stage is None and self.stages is not None:
            raise ConfigError(f"capture {self.name!r} has stages {list(self.stages)}; allowed: summary(stage=<one of them>)")
        if stage not in summaries:
            recorded = [key for key in summaries if key is not None] or "none"
            raise KeyError(f"capture {self.name!r} has no summary for stage {stage!r}; recorded: {recorded}")
        return summaries[stage]

    def cancel(self) -> bool:
        """Cancel the capture if it has not started yet; return whether it was cancelled."""
        with self._lock:
            if self._state != "waiting":
                return False
            self._state = "done"
        self.error = SessionError(f"capture {self.name!r} was cancelled before it started")
        self._done.set()
        return True

    # -- driven by the controller ----------------------------------------------------------------
    def _begin(self) -> bool:
        with self._lock:
            if self._state != "waiting":
                return False
            self._state = "running"
            return True

    def _job_started(self) -> None:
        with self._lock:
            self._jobs += 1

    def _job_done(self, stage: str | None, summary: Summary | None, files: Iterable[str],
                  errors: list[BaseException]) -> None:
        with self._lock:
            self._jobs -= 1
            self._files.extend(files)
            if summary is not None:
                self._summaries[stage] = summary
            if errors and self.error is None:
                self.error = errors[0]
            finished = self._state == "finishing" and self._jobs == 0
            if finished:
                self._state = "done"
        if finished:
            self._done.set()

    def _end(self, error: BaseException | None = None) -> None:
        """The loop thread is done with it; it is done once the worker has written its files."""
        with self._lock:
            if error is not None and self.error is None:
                self.error = error
            finished = self._jobs == 0
            self._state = "done" if finished else "finishing"
        if finished:
            self._done.set()

    def __repr__(self) -> str:
        stages = f" stages={list(self.stages)}" if self.stages else ""
        return f"<Capture {self.name!r} {self._state} steps={self.steps}{stages} start_step={self.start_step}>"


class _CaptureSession(Session):
    """A session recording one stage of a capture: flushed by its controller, finished on the worker.

    Its op table is read from the exported traces by a child process
    (:func:`~npuprofile.sessions.trace_ops.read_ops`), never in this process.
    """

    flush_on_exit = False
    defer_finish = True
    summary_ops = True

    def _op_table(self) -> Sequence[OpStat | OpRow]:
        if self._ops is None and self.state == "stopped":
            files = [p for p in self.trace_paths if p.is_file() and p.name.endswith((".json", ".json.gz"))]
            self._ops = self._guard("read op table", lambda: read_ops(files, TOP_OPS)) or []
        return self._ops or []


class _Worker:
    """One background thread running end-of-capture work in order; joined by ``close()``."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._pending = 0
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, job: Callable[[], None]) -> None:
        with self._idle:
            self._pending += 1
            if self._thread is None or not self._thread.is_alive():
                thread = threading.Thread(target=self._run, name="npuprofile-capture-worker", daemon=True)
                try:
                    thread.start()
                except RuntimeError:  # no new threads at interpreter shutdown: do it here
                    self._pending -= 1
                    job()
                    return
                self._thread = thread
        self._jobs.put(job)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job()
            except Exception:  # a job records its own errors; this only keeps the worker alive
                logger.exception("npuprofile: background capture work failed")
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every submitted job has run; return whether they all did within ``timeout``."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)


class _Run:
    """The capture in progress; only the loop thread touches it."""

    def __init__(self, capture: Capture, controller: "Controller") -> None:
        self.capture = capture
        self.controller = controller
        self.left: dict[str | None, int] = {key: capture.steps for key in (capture.stages or (None,))}
        self.session: _CaptureSession | None = None
        self.paused = False
        self.recording = False
        self.handle: Any = None
        self.engine_steps: dict[str | None, list[int]] = collections.defaultdict(list)
        self.probed: set[str | None] = set()
        self.error: BaseException | None = None

    @property
    def over(self) -> bool:
        return self.session is None and not any(self.left.values())

    def begin_step(self, index: int, stage: str | None) -> None:
        """Before the work of engine step ``index``: record it if the capture wants it."""
        key = stage if self.capture.stages is not None else None
        wanted = self.left.get(key, 0) > 0 and (self.session is None or self.session.stage == key)
        if not wanted:
            if self.session is not None and not self.paused:
                self._pause()
            return
        if self.session is None and not self._start(key):
            return
        session = self.session
        assert session is not None
        if self.paused:
            session._resume()
            self.paused = False
        self.recording = True
        self.engine_steps[key].append(index)
        trace = session._trace
        self.handle = session._guard("open step range", lambda: trace.push(f"ProfilerStep#{index}")) if trace else None

    def end_step(self) -> None:
        """After the work of a recorded step: close its range and count it."""
        if not self.recording:
            return
        self.recording = False
        session = self.session
        assert session is not None
        trace, handle, self.handle = session._trace, self.handle, None
        if trace is not None and handle is not None:
            session._guard("close step range", lambda: trace.pop(handle))
        session.step()
        key = session.stage
        self.left[key] -= 1
        if self.capture.max_trace_mb is not None and key not in self.probed and self.left[key] > 0:
            self.probed.add(key)
            self._apply_budget(session, key)
        if self.left[key] <= 0:
            self._close_session()

    def finish(self) -> None:
        """End now (``stop()``, ``close()``): the steps recorded so far are kept."""
        self.end_step()
        if self.session is not None:
            self._close_session()
        if any(self.left.values()):
            self.capture.cut_short = True
            self.left = dict.fromkeys(self.left, 0)

    # -- sessions -------------------------------------------------------------------------------
    def _start(self, key: str | None) -> bool:
        capture = self.capture
        session = _CaptureSession(capture.config, capture.backend, capture.backend_options, stage=key)
        session.extra_metadata["capture"] = {
            "name": capture.name, "steps_requested": capture.steps, "start_step": capture.start_step,
            "stages": list(capture.stages) if capture.stages else None,
        }
        try:
            session.start()
        except NpuProfileError as exc:
            logger.warning("npuprofile: capture %r could not start: %s", capture.name, exc)
            self.error = exc
            self.left = dict.fromkeys(self.left, 0)
            return False
        self.session = session
        return True

    def _pause(self) -> None:
        session = self.session
        assert session is not None
        trace = session._trace
        if trace is not None and not trace.can_pause:
            self.controller._note_once(
                "no-pause", "npuprofile: the %r backend's profiler cannot pause; steps of other stages between "
                "recorded steps stay in the trace, outside every ProfilerStep range", session.backend.name
                if session.backend is not None else "?")
        session._pause()
        self.paused = True

    def _close_session(self) -> None:
        session = self.session
        assert session is not None
        self.session = None
        self.paused = False
        key = session.stage
        meta = session.extra_metadata["capture"]
        meta["engine_steps"] = list(self.engine_steps[key])
        meta["cut_short"] = self.left.get(key, 0) > 0
        errors = session._halt()
        capture = self.capture
        capture._job_started()
        self.controller._worker.submit(lambda: self.controller._complete(capture, session, errors))

    def _apply_budget(self, session: _CaptureSession, key: str | None) -> None:
        """After the first recorded step: measure it and keep what fits ``max_trace_mb``."""
        capture = self.capture
        assert capture.max_trace_mb is not None
        paths = session._end_trace()
        config = session.config
        probe = _budget.measure(paths, compress=config.gzip)
        enabled = [name for name in _budget.DROP_ORDER if getattr(config, name)]
        decision = _budget.decide(probe, enabled, self.left[key], capture.max_trace_mb)
        session.extra_metadata["budget"] = decision.to_dict(capture.max_trace_mb, probe, capture.steps)
        if decision.dropped:
            logger.warning(
                "npuprofile: capture %r%s: max_trace_mb=%g: one step takes %.2f MiB; dropped %s; recording %d of %d "
                "steps (about %.1f MiB)", capture.name, f" stage {key!r}" if key else "", capture.max_trace_mb,
                probe.on_disk / _budget.MIB, ", ".join(decision.dropped), 1 + decision.steps, capture.steps,
                decision.estimate_bytes / _budget.MIB)
        self.left[key] = decision.steps
        if decision.steps > 0:
            options: dict[str, Any] = {name: False for name in decision.dropped if name != "steps"}
            session._begin_trace(dataclasses.replace(config, **options))


class Controller:
    """Captures for a serving engine: ``request()``/``stop()`` from any thread, ``step()`` on the loop thread.

    Keyword arguments are :func:`~npuprofile.session` options used by every
    capture (a request may override them), plus ``steps`` (the default steps
    per capture, ``NPUPROFILE_CONTROLLER_STEPS``), ``max_trace_mb`` (the
    default size budget, ``NPUPROFILE_MAX_TRACE_MB``) and ``report`` (also
    write an HTML report per summary, ``NPUPROFILE_CONTROLLER_REPORT``).
    Every option is checked here. Usable as a plain object: :meth:`close`
    (or interpreter exit, or SIGTERM) finishes a running capture.
    """

    def __init__(self, *, steps: int | None = None, max_trace_mb: float | None = None, report: bool | None = None,
                 **session_options: Any) -> None:
        self.default_steps: int = _setting(steps, "NPUPROFILE_CONTROLLER_STEPS", DEFAULT_STEPS,
                                           lambda v, s: _config.parse_int(v, s, 1), "steps")
        self.max_trace_mb: float | None = _setting(max_trace_mb, "NPUPROFILE_MAX_TRACE_MB", None,
                                                   parse_megabytes, "max_trace_mb")
        self.report: bool = _setting(report, "NPUPROFILE_CONTROLLER_REPORT", False, _config.parse_bool, "report")
        _refuse_forbidden(session_options)
        config, _, _ = prepare(**session_options)
        #: The run id captures build on (``<run_id>-<capture name>``).
        self.run_id: str = config.run_id or default_run_id()
        self.rank, self.world_size = rank_and_world_size()
        self.session_options = dict(session_options)
        #: Every capture requested, in order.
        self.captures: list[Capture] = []
        self.closed = False
        self._count = 0  # step() calls so far: the index of the next engine step
        self._wake = _NEVER  # the fast path of step() runs while the next index is below this
        self._inbox: collections.deque[Capture] = collections.deque()
        self._run: _Run | None = None
        self._stop = False
        self._names: set[str] = set()
        self._lock = threading.Lock()
        self._driving = threading.Lock()
        self._driver: int | None = None  # thread id inside step()'s slow path
        self._loop: threading.Thread | None = None
        self._worker = _Worker()
        self._noted: set[str] = set()
        self._hook = _ExitHook(self)
        _lifecycle.track(self._hook, owned=False)  # close() hands the capture to the loop thread itself

    # -- any thread ---------------------------------------------------------------------------
    @property
    def step_index(self) -> int:
        """The index of the engine step running now (``-1`` before the first ``step()``)."""
        return self._count - 1

    @property
    def capturing(self) -> bool:
        """Whether a capture is running."""
        return self._run is not None

    def request(self, steps: int | None = None, *, start_step: int | None = None, delay_steps: int = 0,
                stages: Iterable[str] | str | None = None, activities: Iterable[str] | str | None = None,
                name: str | None = None, queue: bool = False, max_trace_mb: float | None = None,
                **session_overrides: Any) -> Capture:
        """Ask for a capture (from any thread; returns at once) and return it.

        ``steps`` engine steps (per stage with ``stages``) from the next step,
        from engine step ``start_step``, or ``delay_steps`` steps later.
        ``activities`` and the other keywords override the controller's
        session options for this capture. A request while another capture
        runs or waits is refused with :class:`~npuprofile.errors.SessionError`
        unless ``queue=True`` (it then runs after it). Options that could
        never start raise :class:`~npuprofile.errors.ConfigError` here.
        """
        count = _config.parse_int(steps, "steps", 1) if steps is not None else self.default_steps
        if start_step is not None:
            start_step = _config.parse_int(start_step, "start_step")
        delay = _config.parse_int(delay_steps, "delay_steps")
        if start_step is not None and delay:
            raise ConfigError(f"start_step={start_step!r} and delay_steps={delay_steps!r}: allowed: one of them")
        chosen_stages = _parse_stages(stages)
        budget = parse_megabytes(max_trace_mb, "max_trace_mb") if max_trace_mb is not None else self.max_trace_mb
        _refuse_forbidden(session_overrides)
        if name is not None:
            name = _config.parse_run_id(name, "name")
        options = dict(self.session_options, **session_overrides)
        if activities is not None:
            options["activities"] = activities
        base = options.pop("run_id", None) or self.run_id
        label = self._reserve(name)
        try:
            run_id = _capture_run_id(str(base), label)
            config, backend, backend_options = prepare(**options, run_id=run_id)
            selected = config.enabled and (config.ranks is None or self.rank in config.ranks)
            with self._lock:
                if self.closed:
                    raise SessionError("the controller is closed; make a new Controller to capture again")
                now = self._count
                if start_step is not None and start_step < now:
                    raise ConfigError(f"start_step={start_step} has passed: the engine is at step {now - 1}; "
                                      f"allowed: {now} or later")
                if not queue:
                    self._refuse_if_busy()
                begin = start_step if start_step is not None else now + delay
                capture = Capture(label, run_id, count, chosen_stages, begin, budget, config, backend,
                                  backend_options, selected)
                self.captures.append(capture)
                if selected:
                    self._inbox.append(capture)
                    self._wake = min(self._wake, begin)
        except BaseException:
            with self._lock:
                self._names.discard(label)
            raise
        if not selected:
            capture._begin()
            capture._end()
        return capture

    def stop(self) -> Capture | None:
        """From any thread: end the running capture at the next ``step()`` and cancel those still waiting.

        Returns the capture that will end (``None`` when none runs). Its
        summary counts the steps recorded until then.
        """
        with self._lock:
            waiting = list(self._inbox)
            self._inbox.clear()
            running = self._run.capture if self._run is not None else None
            if running is not None:
                self._stop = True
                self._wake = 0
        for capture in waiting:
            capture.cancel()
        return running

    def close(self, timeout: float | None = None) -> None:
        """Finish a running capture (its files are written), cancel waiting ones, wait for the worker.

        Called from the loop thread, the capture ends here. From another
        thread while the loop thread lives, the loop thread ends it at its
        next ``step()`` (within :data:`HANDOFF_SECONDS`, else it ends here).
        ``timeout`` bounds the wait for the background work.
        """
        with self._lock:
            if self.closed:
                return
            self.closed = True
            waiting = list(self._inbox)
            self._inbox.clear()
            self._stop = True
            self._wake = 0
        for capture in waiting:
            capture.cancel()
        self._finish_running()
        self._wake = _NEVER
        self._worker.join(timeout)
        _lifecycle.untrack(self._hook)

    def __enter__(self) -> "Controller":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "capturing" if self.capturing else "idle"
        return f"<Controller {state} run_id={self.run_id!r} rank={self.rank} step={self.step_index}>"

    # -- the loop thread ------------------------------------------------------------------------
    def step(self, stage: str | None = None) -> None:
        """At the start of each engine step, on the thread that runs it: start, advance and end captures.

        ``stage`` names the kind of step (``"prefill"``, ``"decode"``) for
        staged captures. With nothing to do it costs about as much as an idle
        region.
        """
        count = self._count
        if count < self._wake:
            self._count = count + 1
            return
        self._advance(stage)

    @_lifecycle.machinery  # a signal that lands while a capture starts, exports or ends waits for it
    def _advance(self, stage: str | None) -> None:
        with self._driving:
            self._driver = threading.get_ident()
            try:
                self._drive(stage)
            finally:
                self._driver = None

    def _drive(self, stage: str | None) -> None:
        index = self._count
        self._count = index + 1
        self._loop = threading.current_thread()
        run = self._run
        with self._lock:
            stop, self._stop = self._stop, False
        if run is not None:
            run.end_step()
            if stop:
                run.finish()
            if run.over:
                self._end_run(run)
        if self._run is None and not self.closed:
            self._take(index)
        run = self._run
        if run is not None:
            run.begin_step(index, stage)
            if run.over:
                self._end_run(run)
        with self._lock:
            if self._run is not None or self._stop:
                self._wake = 0
            else:
                self._wake = min((c.start_step for c in self._inbox), default=_NEVER)

    def _take(self, index: int) -> None:
        with self._lock:
            ready = next((c for c in self._inbox if c.start_step <= index), None)
            if ready is None:
                return
            self._inbox.remove(ready)
            if not ready._begin():
                return
            self._run = _Run(ready, self)
        if index > ready.start_step:
            logger.info("npuprofile: capture %r starts at step %d, after its start_step %d", ready.name, index,
                        ready.start_step)

    def _end_run(self, run: _Run) -> None:
        with self._lock:
            if self._run is run:
                self._run = None
        run.capture._end(run.error)

    def _finish_running(self) -> None:
        loop = self._loop
        here = threading.get_ident()
        if self._driver == here:
            logger.error("npuprofile: a capture was being started or stopped when the process was told to end; "
                         "its files may be incomplete")
            return
        if loop is not None and loop.is_alive() and loop.ident != here and self._run is not None:
            if self._await_loop():
                return
            logger.warning("npuprofile: the loop thread did not reach step() within %.0f s; ending the capture "
                           "from thread %r", HANDOFF_SECONDS, threading.current_thread().name)
        with self._driving:
            run = self._run
            if run is not None:
                run.finish()
                self._end_run(run)

    def _await_loop(self) -> bool:
        """Let the loop thread end the running capture at its next step(); whether it did in time."""
        import time

        deadline = time.monotonic() + HANDOFF_SECONDS
        while time.monotonic() < deadline:
            if self._run is None:
                return True
            time.sleep(0.005)
        return self._run is None

    # -- the worker ------------------------------------------------------------------------------
    def _complete(self, capture: Capture, session: _CaptureSession, errors: list[BaseException]) -> None:
        """Background work of one stage session: deferred trace work, summary, op table, report, upload."""
        summary: Summary | None = None
        files: list[str] = []
        try:
            errors = errors + session._complete()
            summary = session._summary(with_ops=True)
            if self.report and session.summary_paths:
                from npuprofile.summary.html import write_report

                report = Path(str(session.summary_paths[0]).replace(".summary.json", ".report.html"))
                write_report(summary, report)
                files.append(str(report))
            if session.uploaded:
                files = list(session.uploaded)
            else:
                files = [str(p) for p in session.trace_paths] + [str(p) for p in session.summary_paths] + files
                if session.memory_snapshot_path is not None:
                    files.append(str(session.memory_snapshot_path))
        except Exception as exc:
            errors.append(exc)
        capture._job_done(session.stage, summary, files, errors)
        logger.info("npuprofile: capture %r%s done: %d step(s), %d file(s)", capture.name,
                    f" stage {session.stage!r}" if session.stage else "", len(summary.steps) if summary else 0,
                    len(files))

    def _reserve(self, name: str | None) -> str:
        """Take ``name``, or the next free ``c<n>``, for a new capture (names are unique per controller)."""
        with self._lock:
            if self.closed:
                raise SessionError("the controller is closed; make a new Controller to capture again")
            if name is None:
                number = len(self.captures) + 1
                while f"c{number}" in self._names:
                    number += 1
                name = f"c{number}"
            elif name in self._names:
                raise ConfigError(f"name={name!r} was used by an earlier capture of this controller; allowed: a new name")
            self._names.add(name)
            return name

    def _note_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._noted:
            self._noted.add(key)
            logger.warning(message, *args)

    def _refuse_if_busy(self) -> None:
        run = self._run
        if run is not None:
            capture = run.capture
            done = capture.steps * len(run.left) - sum(run.left.values())
            raise SessionError(
                f"capture refused: capture {capture.name!r} is running ({done} of "
                f"{capture.steps * len(run.left)} steps recorded); pass queue=True to run after it, or stop() it"
            )
        if self._inbox:
            waiting = self._inbox[0]
            raise SessionError(
                f"capture refused: capture {waiting.name!r} waits to start at step {waiting.start_step}; "
                "pass queue=True to run after it, or stop() it"
            )


class _ExitHook:
    """What the exit and SIGTERM flush calls: the controller's :meth:`Controller.close`."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def stop(self) -> None:
        self.controller.close()


def _refuse_forbidden(options: Mapping[str, Any]) -> None:
    for key, why in _FORBIDDEN.items():
        if options.get(key) is not None:
            raise ConfigError(f"{key}={options[key]!r} is not allowed: {why}")


def _capture_run_id(base: str, name: str) -> str:
    keep = _config.RUN_ID_MAX - len(name) - 1
    return f"{base[:keep]}-{name}" if keep > 0 else name[: _config.RUN_ID_MAX]
