"""Session lifecycle: start the backend profiler, count steps, stop, write traces and the summary.

A failure inside the profiling machinery never reaches the user's code unless
``strict=True``: it is logged once, recorded in ``Session.degraded``, and the
workload carries on. An exception in user code still stops the profiler and
writes what was collected.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

from npuprofile.backends.base import Backend, MemoryHistory, OpStat, Trace
from npuprofile.backends.registry import backends
from npuprofile.core import compile as _compile
from npuprofile.core import graph as _graph
from npuprofile.core import region as _region
from npuprofile.core.collector import STEP_LIMIT, Collector, Reservoir
from npuprofile.core.region import ACTIVE, Recorder
from npuprofile.core.stats import EXACT_SAMPLES, RELATIVE_ACCURACY, RegionStats
from npuprofile.errors import ConfigError, NpuProfileError, SessionError
from npuprofile.sessions import config as _config
from npuprofile.sessions import lifecycle as _lifecycle
from npuprofile.sessions.coords import coords_dict
from npuprofile.sessions.distributed import default_run_id, rank_and_world_size
from npuprofile.sessions.files import TraceSink, atomic_write, atomic_write_text, default_stem
from npuprofile.summary.model import OpRow, StepStat, Summary

logger = logging.getLogger("npuprofile")

T = TypeVar("T")

TOP_OPS = 20
_START_LOCK = threading.Lock()
#: Backends whose missing allocator history was already logged (``memory_snapshot=True``).
_NO_MEMORY_HISTORY: set[str] = set()


class Session:
    """One profiling session. Make it with :func:`session`; use it as a context manager.

    States: ``new`` -> ``running`` -> ``stopped``. A session that is disabled
    (``enabled=False``) or not selected for this rank runs as a no-op and writes
    nothing.
    """

    #: Whether exit and SIGTERM stop this session (a controller's captures are flushed by their controller).
    flush_on_exit = True
    #: Whether slow work after the profiler's stop (compression, analysis) is deferred to :meth:`_complete`.
    defer_finish = False
    #: Whether the summary file includes the profiler's op table (reading it costs about a trace export).
    summary_ops = False

    def __init__(self, config: _config.Config, backend: Backend | None, backend_options: Any, *,
                 stage: str | None = None) -> None:
        self.config = config
        #: The backend this session runs on (``None`` when disabled).
        self.backend = backend
        #: That backend's parsed options.
        self.backend_options = backend_options
        self.rank, self.world_size = rank_and_world_size()
        self.run_id = config.run_id or default_run_id()
        #: The engine stage this session records (part of its file names), or ``None``.
        self.stage = stage
        #: Facts its producer adds to the summary's metadata (a controller's capture: windows, budget).
        self.extra_metadata: dict[str, Any] = {}
        #: Where the files went after an upload (``output_dir`` given as a URI).
        self.uploaded: list[str] = []
        self.state = "new"
        self.degraded: list[str] = []
        self.summary_paths: list[Path] = []
        self._sink: TraceSink | None = None
        self._trace: Trace | None = None
        self._recorder: Recorder | None = None
        self._stats = Collector()
        self._steps: Reservoir[StepStat] = Reservoir(STEP_LIMIT)
        self._step_mark: Any = None
        self._step = 0
        self._discard_below = 0
        self._ops: Sequence[OpStat | OpRow] | None = None
        self._memory: MemoryHistory | None = None
        self._memory_state: Any = None
        self._deferred: list[Trace] = []  # traces ended by a restart, still to finish
        self.memory_snapshot_path: Path | None = None
        self._started_at: float | None = None
        self._stopped_at: float | None = None
        self._reported: set[str] = set()
        self._compiled: _graph.SessionRegions | None = None
        self._lock = threading.RLock()
        # The summary as it stood when the final export began (kept in memory, not written): should
        # that export never end, a signal's watchdog writes it (see _save_without_profiler).
        self._backstop: Summary | None = None
        self._files_lock = threading.Lock()  # one summary write at a time: the stopping thread's or the watchdog's
        self._write_failed = False  # a trace write failed (e.g. a full disk): the profiler is let go at stop

    # -- properties -------------------------------------------------------------------
    @property
    def adapter(self) -> Backend | None:
        """Deprecated name of :attr:`backend`."""
        warnings.warn("Session.adapter is deprecated; use Session.backend", DeprecationWarning, stacklevel=2)
        return self.backend

    @property
    def active(self) -> bool:
        """True while this session records (running, enabled and selected for this rank)."""
        return self._recorder is not None and not self._recorder.closed

    @property
    def selected(self) -> bool:
        """Whether this rank is profiled (``ranks=`` / ``NPUPROFILE_RANKS``)."""
        return self.config.enabled and (self.config.ranks is None or self.rank in self.config.ranks)

    @property
    def trace_paths(self) -> list[Path]:
        """Trace files (or trace directories) this session has written so far."""
        return list(self._sink.paths) if self._sink is not None else []

    @property
    def output_dir(self) -> Path:
        """Where this session writes."""
        return self.config.output_dir

    @property
    def file_stem(self) -> str:
        """The prefix of every file this session writes: run id, rank, coordinates, stage, host and pid."""
        return default_stem(self.run_id, self.rank, self.config.coords, self.stage)

    @property
    def step_count(self) -> int:
        """Steps completed so far."""
        return self._step

    # -- lifecycle ---------------------------------------------------------------------
    @_lifecycle.machinery
    def start(self) -> "Session":
        """Start recording (and tracing, unless ``trace=False``)."""
        if self.state != "new":
            raise SessionError(f"session already {self.state}; create a new session to profile again")
        if not self.selected:
            self.state = "running"
            logger.debug("npuprofile: session disabled or rank %d not selected; running as a no-op", self.rank)
            return self
        backend = self.backend
        assert backend is not None  # selected sessions always have one
        _compile.install()
        with _START_LOCK:
            if ACTIVE:
                raise SessionError(
                    "another npuprofile session is already active; sessions do not nest: "
                    "stop the running one first"
                )
            self._started_at = time.time()
            timer = backend.timer()
            push = pop = None
            if self.config.trace:
                self._sink = TraceSink(self.config.output_dir, self.file_stem, self.config.gzip,
                                       defer=self.defer_finish)
                trace = self._open_trace(self.config)
                if trace is not None:
                    push, pop = trace.markers()
                self._start_memory_history(backend)
            self._recorder = Recorder(timer, backend.synchronize, push, pop, on_error=self._marker_error)
            self._step_mark = timer.mark()
            self._compiled = _graph.SessionRegions(self.config.compiled_ranges)
            self._compiled.start()
            ACTIVE.append(self._recorder)
            self.state = "running"
        if self.flush_on_exit:
            _lifecycle.track(self)
        return self

    def _open_trace(self, config: _config.Config) -> Trace | None:
        """Build and start a trace of ``config`` through this session's sink, labelled with this session's facts."""
        backend, sink = self.backend, self._sink
        assert backend is not None and sink is not None
        trace: Trace | None = self._guard("create profiler",
                                          lambda: backend.open_trace(config, self.backend_options, sink))
        if trace is None:
            return None
        trace.on_error = self._trace_error
        if not self._guard("start profiler", trace.start, ok=True):
            return None
        self._trace = trace
        self._guard("label trace", lambda: trace.label(self._facts()))
        return trace

    def _facts(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "rank": self.rank, "world_size": self.world_size,
                "coords": coords_dict(self.config.coords), "stage": self.stage}

    def _start_memory_history(self, backend: Backend) -> None:
        if not self.config.memory_snapshot:
            return
        history = self._guard("memory history", backend.memory_history)
        if history is None:
            if backend.name not in _NO_MEMORY_HISTORY:
                _NO_MEMORY_HISTORY.add(backend.name)
                logger.warning("npuprofile: memory_snapshot=True: the %r backend keeps no allocator history; "
                               "profiling goes on without a memory snapshot", backend.name)
            return
        if self._guard("start memory history", history.start, ok=True):
            self._memory = history

    @_lifecycle.machinery
    def stop(self) -> "Session":
        """Stop recording: stop the profiler, write traces and the summary. Safe to call twice."""
        with self._lock:
            if self.state == "stopped":
                return self
            if self.state == "new":
                raise SessionError("session was never started; use it as a context manager or call start()")
            errors = self._halt()
            errors += self._complete()
        _lifecycle.untrack(self)
        if errors:
            raise errors[0]
        return self

    def _halt(self) -> list[BaseException]:
        """The part of :meth:`stop` on the thread that ran the work: the profiler's own stop and export.

        Returns the errors of strict mode (each action runs even when an earlier one failed).
        """
        with self._lock:
            if self.state == "stopped":
                return []
            self.state = "stopped"
            recorder = self._recorder
            if recorder is None:
                return []
            self._close_open_regions(recorder)
            if ACTIVE and ACTIVE[0] is recorder:
                ACTIVE.clear()
            if self._compiled is not None:
                self._compiled.stop()
            recorder.closed = True
            self._stopped_at = time.time()
            steps: list[tuple[str, Callable[[], Any]]] = []
            trace = self._trace
            if trace is not None:
                if self.flush_on_exit and self._save_summary() and _writes_at_stop(trace):
                    steps.append(("resolve timings", lambda: self._fold(recorder)))
                    steps.append(("keep summary", self._keep_backstop))
                steps.append(("stop profiler", trace.stop))
                steps.append(("collect traces", trace.collect))
            memory = self._memory
            if memory is not None:
                steps.append(("memory snapshot", lambda: setattr(self, "_memory_state", memory.snapshot())))
                steps.append(("stop memory history", memory.stop))
            try:
                errors = self._run_all(steps)
            finally:
                with self._files_lock:
                    self._backstop = None  # the export ended: the summary written next is the whole one
            del steps, trace  # no reference to the profiler left here: it can be released
            self._guard("release profiler", self._release_after_failed_write)
            return errors

    def _complete(self) -> list[BaseException]:
        """The rest of :meth:`stop`, after :meth:`_halt` (any thread): deferred trace work, timings, summary."""
        with self._lock:
            recorder = self._recorder
            if recorder is None or self.state != "stopped":
                return []
            steps: list[tuple[str, Callable[[], Any]]] = []
            if self.defer_finish:
                for each in [*self._deferred, *([self._trace] if self._trace is not None else [])]:
                    steps.append(("finish traces", each.finish))
                    steps.append(("collect traces", each.collect))
                self._deferred = []
            steps.append(("resolve timings", lambda: self._fold(recorder, final=True)))
            if self._memory_state is not None:
                steps.append(("write memory snapshot", self._write_memory_snapshot))
            if self._save_summary():
                steps.append(("write summary", self._write_summary))
            if self.config.upload_to is not None:
                steps.append(("upload", self._upload))
            return self._run_all(steps)

    def _run_all(self, steps: list[tuple[str, Callable[[], Any]]]) -> list[BaseException]:
        # In strict mode a failing step must not keep the later ones from
        # saving what was collected: run them all, then hand back the errors.
        errors: list[BaseException] = []
        for action, call in steps:
            try:
                self._guard(action, call)
            except Exception as exc:
                errors.append(exc)
        return errors

    def _pause(self) -> None:
        """Between steps: stop recording regions and (where the profiler can) trace events, until :meth:`_resume`."""
        recorder, backend = self._recorder, self.backend
        if recorder is None or recorder.closed or backend is None:
            return
        if ACTIVE and ACTIVE[0] is recorder:
            ACTIVE.clear()
        trace = self._trace
        if trace is not None and trace.can_pause:
            self._guard("synchronize", backend.synchronize)  # the device work of the last step is recorded
            self._guard("pause profiler", trace.pause)

    def _resume(self) -> None:
        """Record again after :meth:`_pause`; the next step's time starts now."""
        recorder, backend = self._recorder, self.backend
        if recorder is None or recorder.closed or backend is None:
            return
        trace = self._trace
        if trace is not None and trace.can_pause:
            self._guard("synchronize", backend.synchronize)  # device work of the steps skipped stays out
            self._guard("resume profiler", trace.resume)
        with _START_LOCK:
            if ACTIVE:
                raise SessionError("another npuprofile session became active while this one was paused")
            ACTIVE.append(recorder)
        self._step_mark = recorder.mark()

    def _end_trace(self) -> list[Path]:
        """Between steps: stop the running trace (its files are written) and return the files it wrote.

        Statistics go on; :meth:`_begin_trace` starts the next trace.
        """
        recorder, trace = self._recorder, self._trace
        if recorder is None or recorder.closed or trace is None:
            return []
        before = set(self.trace_paths)
        self._trace = None
        recorder.push = recorder.pop = None
        self._guard("stop profiler", trace.stop)
        self._guard("collect traces", trace.collect)
        if self.defer_finish:
            self._deferred.append(trace)
        return [path for path in self.trace_paths if path not in before]

    def _begin_trace(self, config: _config.Config) -> bool:
        """After :meth:`_end_trace`: go on with a trace built from ``config``; the next step's time starts now."""
        recorder = self._recorder
        if recorder is None or recorder.closed or self._trace is not None:
            return False
        self.config = config
        trace = self._open_trace(config)
        if trace is not None:
            recorder.push, recorder.pop = trace.markers()
        self._step_mark = recorder.mark()
        return trace is not None

    @_lifecycle.machinery
    def step(self) -> None:
        """Mark the end of one step: advances the profiler's schedule and the per-step statistics."""
        recorder = self._recorder
        if recorder is None or recorder.closed:
            if self.state == "new":
                raise SessionError("step() called before the session started")
            return
        trace = self._trace
        if trace is not None:
            self._guard("profiler step", trace.step)
        with self._lock:
            self._close_step(recorder, recorder.mark())
            self._step += 1

    def steps(self, iterable: Iterable[T], *, warmup: int = 0) -> Iterator[T]:
        """Yield each item of ``iterable`` and call :meth:`step` after it.

        The first ``warmup`` items run normally but their regions and step times
        are left out of the statistics.
        """
        warmup = _config.parse_int(warmup, "warmup")
        self._discard_below = self._step + warmup
        for item in iterable:
            yield item
            self.step()

    def __enter__(self) -> "Session":
        return self.start()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and self.active:
            logger.info("npuprofile: %s raised inside the session; saving what was collected", exc_type.__name__)
        self.stop()

    # -- results ------------------------------------------------------------------------
    def summary(self, all_ranks: bool = False) -> Summary:
        """Region statistics so far (plus top ops once a tracing session has stopped).

        ``all_ranks=True`` gathers the statistics of every rank of the default
        ``torch.distributed`` group (a collective: every rank must call it, selected
        or not) and returns an :class:`~npuprofile.AllRanksSummary`.
        """
        with self._lock:  # regions and steps of one moment
            stats = self._region_stats()
            local = self._summary(with_ops=True, stats=stats)
        if all_ranks:
            from npuprofile.sessions.gather import gather_summary

            return gather_summary(local, stats, selected=self.selected)
        return local

    def _region_stats(self) -> list[RegionStats]:
        recorder = self._recorder
        if recorder is not None and not recorder.closed:
            self._fold(recorder)
        with self._lock:
            return self._stats.snapshot()

    def _summary(self, with_ops: bool, stats: list[RegionStats] | None = None) -> Summary:
        with self._lock:
            regions = self._region_stats() if stats is None else stats
            names = {s.name for s in regions}
            # the profiler lists our regions among its ops (they are record_function ranges)
            ops = [op for op in self._op_table() if op.name not in names] if with_ops else []
            metadata = self.metadata()
            metadata["sampling"] = self._sampling(regions)
            steps = self._steps.sorted(key=lambda step: step.index)
            return Summary.from_stats(regions, ops, steps, metadata)

    def _sampling(self, regions: list[RegionStats]) -> dict[str, Any]:
        """How the statistics are bounded: which figures are exact and which are estimates."""
        return {
            "steps_kept": len(self._steps.items),
            "steps_measured": self._steps.seen,
            "steps_exact_up_to": STEP_LIMIT,
            "steps": "reservoir" if self._steps.sampled else "all",
            "percentiles_exact_up_to": EXACT_SAMPLES,
            "percentile_relative_accuracy": RELATIVE_ACCURACY,
            "estimated_percentiles": sorted(stats.name for stats in regions if not stats.exact),
        }

    def _op_table(self) -> Sequence[OpStat | OpRow]:
        """Top ops of a stopped tracing session, read from the profiler once, on first request."""
        trace = self._trace
        if self._ops is None and self.state == "stopped" and trace is not None:
            self._ops = self._guard("read op table", lambda: trace.op_table(TOP_OPS)) or []
        return self._ops or []

    def metadata(self) -> dict[str, Any]:
        """Run facts for summaries and reports."""
        backend = self.backend
        meta: dict[str, Any] = {
            "backend": backend.name if backend is not None else None,
            "run_id": self.run_id,
            "rank": self.rank,
            "world_size": self.world_size,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": self._started_at,
            "stopped_at": self._stopped_at,
            "steps": self._step,
            "warmup_steps": self._discard_below,
            "coords": coords_dict(self.config.coords),
            "stage": self.stage,
            "options": self.config.to_dict(),
            "trace_paths": [str(p) for p in self.trace_paths],
            "degraded": list(self.degraded),
        }
        # Regions inside compiled graphs that ran while this session recorded (and were not timed there).
        compiled = self._compiled.not_timed() if self._compiled is not None else {}
        meta["compiled_regions"] = list(compiled)
        meta["compiled_regions_where"] = compiled
        if self.memory_snapshot_path is not None:
            meta["memory_snapshot"] = str(self.memory_snapshot_path)
        if self.config.upload_to is not None:
            meta["upload_to"] = self.config.upload_to
        meta.update(self.extra_metadata)
        if backend is not None:
            meta["backend_options"] = backend.options_to_dict(self.backend_options)
            try:
                meta["versions"] = backend.versions()
            except Exception as exc:
                meta["versions"] = {"error": str(exc)}
        return meta

    # -- internals --------------------------------------------------------------------------
    def _fold(self, recorder: Recorder, final: bool = False) -> None:
        """Resolve deferred (device-clock) regions, then fold this step's samples into the statistics."""
        with self._lock:
            self._resolve(recorder, final)
            self._stats.fold(recorder)

    def _resolve(self, recorder: Recorder, final: bool = False) -> None:
        """Turn deferred (device-clock) regions into samples: durations are readable from here on."""
        with self._lock:
            if recorder.deferred or final:
                self._guard("resolve timings", recorder.timer.flush)
            elapsed = recorder.timer.elapsed_ns
            for region in recorder.drain():
                try:
                    duration = int(elapsed(region.start, region.end))
                except Exception as exc:  # an unreadable device event: skip it, say so once
                    self._report("resolve timings", exc)
                    continue
                parent = region.parent
                if parent is not None:  # children close, and are resolved, before their parents
                    parent.child_ns += duration
                recorder.record(region.name, duration, duration - region.child_ns)

    def _close_step(self, recorder: Recorder, end_mark: Any) -> None:
        """Turn the step that just ended into a StepStat (or drop it during warm-up).

        The work is proportional to the regions that ran in the step, not to every name seen before.
        """
        if recorder.deferred or recorder.buffer:
            self._resolve(recorder)
        index = self._step
        keep = index >= self._discard_below and self._in_window(index)
        totals = self._stats.close_step(recorder, keep)
        start_mark, self._step_mark = self._step_mark, end_mark
        if keep:
            duration = int(recorder.timer.elapsed_ns(start_mark, end_mark))
            self._steps.add(StepStat(index, duration, totals, rank=self.rank))

    def _in_window(self, index: int) -> bool:
        """Whether step ``index`` is one the trace records (a schedule's active phases): the summary counts only those."""
        schedule = self.config.schedule
        return schedule is None or not self.config.trace or schedule.records(index)

    def _close_open_regions(self, recorder: Recorder) -> None:
        node = _region.current_region()
        while node is not None:
            if node.recorder is recorder and node.state == 1:
                logger.debug("npuprofile: region %r still open at session stop; closed", node.name)
                node.__exit__()
                node = _region.current_region()
            else:
                node = node.parent
        _region.forget_closed()

    def _save_summary(self) -> bool:
        return self.config.trace

    def _write_summary(self) -> None:
        # Top ops stay out of the file unless a background worker writes it: reading them costs
        # as much as a trace export, and `npuprofile summarize` derives them from the trace itself.
        summary = self._summary(with_ops=self.summary_ops)
        with self._files_lock:
            self._write_summary_files(summary)

    def _write_summary_files(self, summary: Summary) -> None:
        base = self.config.output_dir / self.file_stem
        json_path = Path(f"{base}.summary.json")
        text_path = Path(f"{base}.summary.txt")
        summary.to_json(json_path)
        atomic_write_text(text_path, str(summary) + "\n")
        self.summary_paths = [json_path, text_path]

    def _keep_backstop(self) -> None:
        """Before the final export: the summary so far, in memory only (writing it would cost two files)."""
        self._backstop = self._summary(with_ops=False)

    def _write_backstop(self, reason: str) -> None:
        """From another thread, while this session's own thread is stuck in its final export: write the
        summary kept when that export began, saying why its trace is missing."""
        if not self._files_lock.acquire(timeout=1.0):
            return
        try:
            summary, self._backstop = self._backstop, None
            if summary is not None:
                summary.metadata["degraded"] = [*summary.metadata.get("degraded", ()),
                                                f"last trace not written: {reason}"]
                self._guard("write summary", lambda: self._write_summary_files(summary))
        finally:
            self._files_lock.release()

    def _write_memory_snapshot(self) -> None:
        import pickle

        state, self._memory_state = self._memory_state, None
        path = self.config.output_dir / f"{self.file_stem}.memory-snapshot.pickle"

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                pickle.dump(state, handle)

        self.memory_snapshot_path = atomic_write(path, write)

    def _upload(self) -> None:
        """Copy every file of this session to the remote ``output_dir`` (then only the remote copies remain)."""
        from npuprofile.sessions.remote import upload

        assert self.config.upload_to is not None
        files = [*self.trace_paths, *self.summary_paths]
        if self.memory_snapshot_path is not None:
            files.append(self.memory_snapshot_path)
        self.uploaded = upload(files, self.config.output_dir, self.config.upload_to)

    def _guard(self, action: str, call: Callable[[], Any], ok: Any = None) -> Any:
        """Run profiling machinery; a failure degrades the session instead of reaching user code."""
        try:
            result = call()
        except Exception as exc:
            self._fail(action, exc)
            return None
        return ok if ok is not None else result

    def _fail(self, action: str, exc: BaseException) -> None:
        """A failure of the profiling machinery (also from the profiler's own callbacks): raised when strict, else recorded."""
        if self.config.strict:
            if isinstance(exc, NpuProfileError):
                raise exc
            raise SessionError(f"npuprofile {action} failed: {type(exc).__name__}: {exc}") from exc
        self._report(action, exc)

    def _report(self, action: str, exc: BaseException) -> None:
        message = f"{action} failed: {type(exc).__name__}: {exc}"
        self.degraded.append(message)
        if action not in self._reported:
            self._reported.add(action)
            logger.warning("npuprofile: %s; the workload continues, the session is degraded", message)

    def _trace_error(self, action: str, exc: BaseException) -> None:
        """A failure inside the profiler's own callbacks (the trace export): noted, then as :meth:`_fail`."""
        if action == "write trace":
            self._write_failed = True
        self._fail(action, exc)

    def _release_after_failed_write(self) -> None:
        """After a failed trace write, let go of the profiler so that the summary still fits on the disk.

        The profiler can keep its partial trace file open after a failed write
        (torch's kineto does, until the profiler is freed), so the space of a
        removed partial file only comes back once the profiler is gone. Its op
        table goes with it.
        """
        if self._write_failed and self._trace is not None:
            self._trace = None
            self._ops = []
            self.degraded.append("op table dropped: the profiler was released after a failed trace write")
            gc.collect()  # the profiler and its trace-ready handler sit in a reference cycle

    # -- signals and fork (see sessions/lifecycle.py) ------------------------------------------
    def _save_without_profiler(self, reason: str, wait: float = 1.0) -> None:
        """Stop recording and write the summary without calling the profiler.

        For a session whose profiler cannot be called from here (its thread has
        ended, is blocked, or did not come back in time when a signal arrived):
        torch crashes when a profiler is stopped from another thread. The trace
        of the cycle in progress is lost; the summary records why.
        """
        if not self._lock.acquire(timeout=wait):  # its own thread is stopping it right now
            self._write_backstop(reason)  # and is stuck in the final export, if a summary was kept for that
            return
        try:
            recorder = self._recorder
            if self.state != "running" or recorder is None:
                return
            self.state = "stopped"
            if ACTIVE and ACTIVE[0] is recorder:
                ACTIVE.clear()
            recorder.closed = True
            self._trace = None
            self._memory = None
            self._stopped_at = time.time()
            self.degraded.append(f"last trace not written: {reason}")
            self._guard("resolve timings", lambda: self._fold(recorder))
            if self._save_summary():
                self._guard("write summary", self._write_summary)
        finally:
            self._lock.release()

    def _disown_after_fork(self) -> None:
        """In a forked child: the parent's session does nothing more here (no profiler call, no file)."""
        self._lock = threading.RLock()  # another thread of the parent may have held it at the fork
        self._files_lock = threading.Lock()
        self._backstop = None
        recorder = self._recorder
        if recorder is not None:
            if ACTIVE and ACTIVE[0] is recorder:
                ACTIVE.clear()
            recorder.closed = True
        self._trace = None
        self._memory = None
        self._deferred = []
        self._sink = None
        self.state = "stopped"

    def _marker_error(self, action: str, exc: BaseException) -> None:
        if self.config.strict:
            raise SessionError(f"npuprofile {action} failed: {type(exc).__name__}: {exc}") from exc
        self._report(action, exc)

    def __repr__(self) -> str:
        backend = self.backend.name if self.backend is not None else None
        return f"<Session {self.state} backend={backend!r} run_id={self.run_id!r} rank={self.rank}>"


def session(
    *,
    backend: str | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    trace: bool | None = None,
    record_shapes: bool | None = None,
    with_stack: bool | None = None,
    profile_memory: bool | None = None,
    with_flops: bool | None = None,
    with_modules: bool | None = None,
    schedule: _config.Schedule | str | Mapping[str, int] | None = None,
    gzip: bool | None = None,
    strict: bool | None = None,
    compiled_ranges: bool | None = None,
    ranks: Iterable[int] | str | None = None,
    run_id: str | None = None,
    enabled: bool | None = None,
    coords: Mapping[str, int] | str | None = None,
    activities: Iterable[str] | str | None = None,
    memory_snapshot: bool | None = None,
    profiler_kwargs: Mapping[str, Any] | None = None,
    flush_timeout: float | None = None,
    **backend_options: Any,
) -> Session:
    """Create a profiling session (start it with ``with`` or :meth:`Session.start`).

    Every keyword mirrors an ``NPUPROFILE_<NAME>`` environment variable; a
    keyword wins over its variable, which wins over the default. Backend-specific
    options go under the backend's name (``npu=...``, ``cuda=...``); options for a
    backend other than the one chosen are accepted and ignored, so one call works
    on every device. All values are validated before anything starts.

    ``coords`` (``{"tp": 0, "dp": 1}``, ``NPUPROFILE_COORDS=tp=0,dp=1``) name this
    process's place in the job's parallel splits, in file names and summaries;
    ``activities`` (host work, device work, or both; see
    :data:`~npuprofile.backends.base.ACTIVITY_KINDS`) chooses what the profiler
    records; ``memory_snapshot=True`` writes the device allocator's history as
    ``<stem>.memory-snapshot.pickle``; ``profiler_kwargs`` passes extra keywords
    to the backend's profiler, checked against its signature here.
    ``flush_timeout`` (seconds, default 10) bounds how long SIGTERM waits for
    the running sessions to be saved before the process ends by the signal
    anyway (see :mod:`npuprofile.sessions.lifecycle`).
    """
    config, chosen, parsed = prepare(
        backend=backend, output_dir=output_dir, trace=trace, record_shapes=record_shapes,
        with_stack=with_stack, profile_memory=profile_memory, with_flops=with_flops,
        with_modules=with_modules, schedule=schedule, gzip=gzip, strict=strict, ranks=ranks,
        run_id=run_id, enabled=enabled, coords=coords, activities=activities, memory_snapshot=memory_snapshot,
        profiler_kwargs=profiler_kwargs, compiled_ranges=compiled_ranges, flush_timeout=flush_timeout,
        **backend_options,
    )
    return Session(config, chosen, parsed)


def _writes_at_stop(trace: Trace) -> bool:
    """Whether stopping ``trace`` may still export (when it cannot tell, it may)."""
    try:
        return trace.writes_at_stop() is not False
    except Exception:
        return True


def prepare(**options: Any) -> tuple[_config.Config, Backend | None, Any]:
    """Resolve and check every option of :func:`session` (same keywords): ``(config, backend, backend options)``.

    Raises :class:`~npuprofile.errors.ConfigError` for any value a session
    could not start with; the backend is ``None`` when profiling is disabled.
    """
    backend_options = {name: options.pop(name) for name in list(options) if name not in _config.OPTION_NAMES}
    config = _config.resolve(**options)
    known = set(backends.names()) if backend_options else set()
    unknown = set(backend_options) - known
    if unknown:
        raise ConfigError(
            f"unknown session option(s) {sorted(unknown)}; allowed: {', '.join(_config.OPTION_NAMES)} "
            f"or a backend name for backend options ({', '.join(sorted(known))})"
        )
    if not config.enabled:
        return config, None, None
    parsed = {
        each.name: each.options(backend_options.get(each.name), os.environ)
        for each in backends.instances()
        if each.name in backend_options
    }
    chosen = backends.get(config.backend)
    if chosen.name not in parsed:
        parsed[chosen.name] = chosen.options(None, os.environ)
    chosen.check(config, parsed[chosen.name])
    return config, chosen, parsed[chosen.name]
