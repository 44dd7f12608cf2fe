"""Session lifecycle: start the backend profiler, count steps, stop, write traces and the summary.

A failure inside the profiling machinery never reaches the user's code unless
``strict=True``: it is logged once, recorded in ``Session.degraded``, and the
workload carries on. An exception in user code still stops the profiler and
writes what was collected.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, TypeVar

from npuprofile.backends.base import Adapter, OpStat
from npuprofile.backends.registry import backends
from npuprofile.core import compile as _compile
from npuprofile.core import graph as _graph
from npuprofile.core import region as _region
from npuprofile.core.region import ACTIVE, Recorder
from npuprofile.core.stats import RegionStats
from npuprofile.errors import ConfigError, NpuProfileError, SessionError
from npuprofile.sessions import config as _config
from npuprofile.sessions.distributed import default_run_id, rank_and_world_size
from npuprofile.sessions.files import TraceSink, atomic_write_text, default_stem
from npuprofile.summary.model import StepStat, Summary

logger = logging.getLogger("npuprofile")

T = TypeVar("T")

TOP_OPS = 20
_START_LOCK = threading.Lock()


class Session:
    """One profiling session. Make it with :func:`session`; use it as a context manager.

    States: ``new`` -> ``running`` -> ``stopped``. A session that is disabled
    (``enabled=False``) or not selected for this rank runs as a no-op and writes
    nothing.
    """

    def __init__(self, config: _config.Config, adapter: Adapter | None, adapter_options: Any) -> None:
        self.config = config
        self.adapter = adapter
        self.adapter_options = adapter_options
        self.rank, self.world_size = rank_and_world_size()
        self.run_id = config.run_id or default_run_id()
        self.state = "new"
        self.degraded: list[str] = []
        self.summary_paths: list[Path] = []
        self._sink: TraceSink | None = None
        self._profiler: Any = None
        self._recorder: Recorder | None = None
        self._steps: list[StepStat] = []
        self._step_mark: Any = None
        self._step = 0
        self._discard_below = 0
        self._ops: list[OpStat] | None = None
        self._started_at: float | None = None
        self._stopped_at: float | None = None
        self._reported: set[str] = set()
        self._compiled: _graph.SessionRegions | None = None
        self._lock = threading.RLock()

    # -- properties -------------------------------------------------------------------
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
        """The prefix of every file this session writes: run id, rank, host and pid."""
        return default_stem(self.run_id, self.rank)

    @property
    def step_count(self) -> int:
        """Steps completed so far."""
        return self._step

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> "Session":
        """Start recording (and tracing, unless ``trace=False``)."""
        if self.state != "new":
            raise SessionError(f"session already {self.state}; create a new session to profile again")
        if not self.selected:
            self.state = "running"
            logger.debug("npuprofile: session disabled or rank %d not selected; running as a no-op", self.rank)
            return self
        adapter = self.adapter
        assert adapter is not None  # selected sessions always have one
        _compile.install()
        with _START_LOCK:
            if ACTIVE:
                raise SessionError(
                    "another npuprofile session is already active; sessions do not nest: "
                    "stop the running one first"
                )
            self._started_at = time.time()
            timer = adapter.timer()
            push = pop = None
            if self.config.trace:
                self._sink = TraceSink(self.config.output_dir, self.file_stem, self.config.gzip)
                handler = adapter.trace_handler(self._sink, self.adapter_options)
                self._profiler = self._guard(
                    "create profiler",
                    lambda: adapter.create_profiler(self.config, self.adapter_options, self._guarded_handler(handler)),
                )
                if self._profiler is not None and self._guard("start profiler", self._profiler.start, ok=True):
                    push, pop = adapter.range_markers()
                else:
                    self._profiler = None
            self._recorder = Recorder(timer, adapter.synchronize, push, pop, on_error=self._marker_error)
            self._step_mark = timer.mark()
            self._compiled = _graph.SessionRegions(self.config.compiled_ranges)
            self._compiled.start()
            ACTIVE.append(self._recorder)
            self.state = "running"
        from npuprofile.sessions import lifecycle as _lifecycle

        _lifecycle.track(self)
        return self

    def stop(self) -> "Session":
        """Stop recording: stop the profiler, write traces and the summary. Safe to call twice."""
        with self._lock:
            if self.state == "stopped":
                return self
            if self.state == "new":
                raise SessionError("session was never started; use it as a context manager or call start()")
            self.state = "stopped"
            recorder = self._recorder
            if recorder is None:
                return self
            self._close_open_regions(recorder)
            if ACTIVE and ACTIVE[0] is recorder:
                ACTIVE.clear()
            if self._compiled is not None:
                self._compiled.stop()
            recorder.closed = True
            self._stopped_at = time.time()
            adapter = self.adapter
            assert adapter is not None
            # In strict mode a failing step must not keep the later ones from
            # saving what was collected: run them all, then raise the first error.
            steps: list[tuple[str, Callable[[], Any]]] = []
            if self._profiler is not None:
                steps.append(("stop profiler", self._profiler.stop))
                steps.append(("collect traces", lambda: adapter.collect_traces(self._sink, self.adapter_options)))
            steps.append(("resolve timings", lambda: self._fold(recorder, final=True)))
            if self._save_summary():
                steps.append(("write summary", self._write_summary))
            first_error: BaseException | None = None
            for action, call in steps:
                try:
                    self._guard(action, call)
                except Exception as exc:
                    first_error = first_error or exc
        from npuprofile.sessions import lifecycle as _lifecycle

        _lifecycle.untrack(self)
        if first_error is not None:
            raise first_error
        return self

    def step(self) -> None:
        """Mark the end of one step: advances the profiler's schedule and the per-step statistics."""
        recorder = self._recorder
        if recorder is None or recorder.closed:
            if self.state == "new":
                raise SessionError("step() called before the session started")
            return
        if self._profiler is not None:
            self._guard("profiler step", self._profiler.step)
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
            samples = recorder.samples if recorder is not None else {}
            return [entry.stats(name) for name, entry in list(samples.items()) if len(entry)]

    def _summary(self, with_ops: bool, stats: list[RegionStats] | None = None) -> Summary:
        with self._lock:
            regions = self._region_stats() if stats is None else stats
            names = {s.name for s in regions}
            # the profiler lists our regions among its ops (they are record_function ranges)
            ops = [op for op in self._op_table() if op.name not in names] if with_ops else []
            return Summary.from_stats(regions, ops, list(self._steps), self.metadata())

    def _op_table(self) -> list[OpStat]:
        """Top ops of a stopped tracing session, read from the profiler once, on first request."""
        if self._ops is None and self.state == "stopped" and self._profiler is not None:
            adapter = self.adapter
            assert adapter is not None
            self._ops = self._guard("read op table", lambda: adapter.op_table(self._profiler, TOP_OPS)) or []
        return self._ops or []

    def metadata(self) -> dict[str, Any]:
        """Run facts for summaries and reports."""
        adapter = self.adapter
        meta: dict[str, Any] = {
            "backend": adapter.name if adapter is not None else None,
            "run_id": self.run_id,
            "rank": self.rank,
            "world_size": self.world_size,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": self._started_at,
            "stopped_at": self._stopped_at,
            "steps": self._step,
            "warmup_steps": self._discard_below,
            "options": self.config.to_dict(),
            "trace_paths": [str(p) for p in self.trace_paths],
            "degraded": list(self.degraded),
        }
        # Regions inside compiled graphs that ran while this session recorded (and were not timed there).
        compiled = self._compiled.not_timed() if self._compiled is not None else {}
        meta["compiled_regions"] = list(compiled)
        meta["compiled_regions_where"] = compiled
        if adapter is not None:
            meta["backend_options"] = adapter.options_to_dict(self.adapter_options)
            try:
                meta["versions"] = adapter.versions()
            except Exception as exc:
                meta["versions"] = {"error": str(exc)}
        return meta

    # -- internals --------------------------------------------------------------------------
    def _fold(self, recorder: Recorder, final: bool = False) -> None:
        """Resolve deferred (device-clock) regions into the recorder's samples."""
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
                region.parent = None  # let finished chains be freed

    def _close_step(self, recorder: Recorder, end_mark: Any) -> None:
        """Turn the step that just ended into a StepStat (or drop it during warm-up)."""
        self._fold(recorder)
        index = self._step
        keep = index >= self._discard_below
        totals = {name: samples.close_step(keep) for name, samples in list(recorder.samples.items())}
        start_mark, self._step_mark = self._step_mark, end_mark
        if keep:
            duration = int(recorder.timer.elapsed_ns(start_mark, end_mark))
            regions = {k: v for k, v in totals.items() if v is not None}
            self._steps.append(StepStat(index, duration, regions, rank=self.rank))

    def _close_open_regions(self, recorder: Recorder) -> None:
        node = _region.current_region()
        while node is not None:
            if node.recorder is recorder and node.state == 1:
                logger.debug("npuprofile: region %r still open at session stop; closed", node.name)
                node.__exit__()
                node = _region.current_region()
            else:
                node = node.parent

    def _save_summary(self) -> bool:
        return self.config.trace

    def _write_summary(self) -> None:
        # Top ops stay out of the file: reading them costs as much as a trace export,
        # and `npuprofile summarize` derives them from the trace itself.
        summary = self._summary(with_ops=False)
        base = self.config.output_dir / self.file_stem
        json_path = Path(f"{base}.summary.json")
        text_path = Path(f"{base}.summary.txt")
        summary.to_json(json_path)
        atomic_write_text(text_path, str(summary) + "\n")
        self.summary_paths = [json_path, text_path]

    def _guarded_handler(self, handler: Callable[[Any], None]) -> Callable[[Any], None]:
        def on_trace_ready(profiler: Any) -> None:
            self._guard("write trace", lambda: handler(profiler))

        return on_trace_ready

    def _guard(self, action: str, call: Callable[[], Any], ok: Any = None) -> Any:
        """Run profiling machinery; a failure degrades the session instead of reaching user code."""
        try:
            result = call()
        except Exception as exc:
            if self.config.strict:
                if isinstance(exc, NpuProfileError):
                    raise
                raise SessionError(f"npuprofile {action} failed: {type(exc).__name__}: {exc}") from exc
            self._report(action, exc)
            return None
        return ok if ok is not None else result

    def _report(self, action: str, exc: BaseException) -> None:
        message = f"{action} failed: {type(exc).__name__}: {exc}"
        self.degraded.append(message)
        if action not in self._reported:
            self._reported.add(action)
            logger.warning("npuprofile: %s; the workload continues, the session is degraded", message)

    def _marker_error(self, action: str, exc: BaseException) -> None:
        if self.config.strict:
            raise SessionError(f"npuprofile {action} failed: {type(exc).__name__}: {exc}") from exc
        self._report(action, exc)

    def __repr__(self) -> str:
        backend = self.adapter.name if self.adapter is not None else None
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
    **backend_options: Any,
) -> Session:
    """Create a profiling session (start it with ``with`` or :meth:`Session.start`).

    Every keyword mirrors an ``NPUPROFILE_<NAME>`` environment variable; a
    keyword wins over its variable, which wins over the default. Backend-specific
    options go under the backend's name (``npu=...``, ``cuda=...``); options for a
    backend other than the one chosen are accepted and ignored, so one call works
    on every device. All values are validated before anything starts.
    """
    config = _config.resolve(
        backend=backend, output_dir=output_dir, trace=trace, record_shapes=record_shapes,
        with_stack=with_stack, profile_memory=profile_memory, with_flops=with_flops,
        with_modules=with_modules, schedule=schedule, gzip=gzip, strict=strict,
        compiled_ranges=compiled_ranges, ranks=ranks,
        run_id=run_id, enabled=enabled,
    )
    known = set(backends.names())
    unknown = set(backend_options) - known
    if unknown:
        raise ConfigError(
            f"unknown session option(s) {sorted(unknown)}; allowed: {', '.join(_config.OPTION_NAMES)} "
            f"or a backend name for backend options ({', '.join(sorted(known))})"
        )
    if not config.enabled:
        return Session(config, None, None)
    parsed = {
        adapter.name: adapter.parse_options(backend_options.get(adapter.name), os.environ)
        for adapter in backends.adapters()
        if adapter.name in backend_options
    }
    adapter = backends.get(config.backend)
    if adapter.name not in parsed:
        parsed[adapter.name] = adapter.parse_options(None, os.environ)
    adapter.validate(config, parsed[adapter.name])
    return Session(config, adapter, parsed[adapter.name])
