"""A backend conformance suite that third parties can run against their own backend.

Every built-in backend passes it (the CPU one, the NPU one against the test
fake of torch_npu, the CUDA one on a GPU). Use it from any test runner::

    from npuprofile.testing import check_backend

    def test_my_backend(tmp_path):
        check_backend(MyBackend(), tmp_path).raise_for_failures()

The suite needs the backend to be available on the machine it runs on.
"""

from __future__ import annotations

import dataclasses
import traceback
from pathlib import Path
from typing import Any, Callable

from npuprofile.backends.base import Backend, OpStat, Timer, Trace
from npuprofile.core.deprecation import renamed
from npuprofile.sessions import config as _config
from npuprofile.sessions.files import TraceSink

__all__ = ["CHECKS", "CheckResult", "ConformanceReport", "check_backend", "default_workload"]

_UNSET: Any = object()

#: The checks run after ``identity``, ``probe`` (and ``workload``, when none is given), in order.
CHECKS = ("versions", "options", "timer", "synchronize", "trace", "ranges", "schedule", "op_table", "isolation")


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """The outcome of one conformance check."""

    name: str
    ok: bool
    detail: str = ""


@dataclasses.dataclass
class ConformanceReport:
    """Every check run against one backend."""

    backend: str
    results: list[CheckResult]

    @property
    def failures(self) -> list[CheckResult]:
        """The checks that failed."""
        return [result for result in self.results if not result.ok]

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return not self.failures

    def raise_for_failures(self) -> "ConformanceReport":
        """Raise ``AssertionError`` listing the failed checks (return self when all passed)."""
        if self.failures:
            lines = [f"backend {self.backend!r} failed {len(self.failures)} conformance check(s):"]
            lines += [f"- {failure.name}: {failure.detail}" for failure in self.failures]
            raise AssertionError("\n".join(lines))
        return self

    def __str__(self) -> str:
        return "\n".join(f"{'ok  ' if r.ok else 'FAIL'} {r.name} {r.detail}".rstrip() for r in self.results)


def default_workload(backend: Backend) -> Callable[[], Any]:
    """A few small matrix products on the backend's device (:attr:`Backend.device`)."""
    import torch

    left = torch.rand(64, 64, device=backend.device)
    right = torch.rand(64, 64, device=backend.device)

    def run() -> Any:
        out = left
        for _ in range(4):
            out = torch.mm(out, right)
        return out

    return run


class _Suite:
    def __init__(self, backend: Backend, directory: Path, options: Any, workload: Callable[[], Any] | None) -> None:
        self.backend = backend
        self.directory = Path(directory)
        self.options_value = options
        self.workload = workload
        self.results: list[CheckResult] = []
        self.first: Trace | None = None
        self.opened = 0

    def check(self, name: str, body: Callable[[], str | None]) -> bool:
        try:
            detail = body() or ""
        except Exception as exc:
            tail = traceback.format_exception_only(type(exc), exc)[-1].strip()
            self.results.append(CheckResult(name, False, tail))
            return False
        self.results.append(CheckResult(name, True, detail))
        return True

    def work(self) -> Any:
        return (self.workload or (lambda: None))()

    def open(self, stem: str, **options: Any) -> tuple[Trace, TraceSink]:
        """A fresh trace (not started) writing into its own sink."""
        config = _config.resolve(environ={}, output_dir=str(self.directory), record_shapes=True, **options)
        self.backend.validate(config, self.options())
        sink = TraceSink(self.directory, stem)
        trace = self.backend.open_trace(config, self.options(), sink)
        _require(isinstance(trace, Trace), f"open_trace() returned {trace!r}, not an npuprofile Trace")
        return trace, sink

    def options(self) -> Any:
        if self.options_value is _UNSET:
            self.options_value = self.backend.options(None, {})
        return self.options_value

    # -- the checks ------------------------------------------------------------------------
    def make_workload(self) -> str:
        self.workload = default_workload(self.backend)
        return f"on {self.backend.device}"

    def identity(self) -> str:
        backend = self.backend
        _require(isinstance(backend, Backend), f"{backend!r} is not an npuprofile Backend")
        _require(isinstance(backend.name, str) and backend.name.isidentifier(), f"name {backend.name!r} is not an identifier")
        _require(isinstance(backend.description, str), "description is not a str")
        _require(isinstance(backend.device, str) and backend.device, f"device {backend.device!r} is not a device type")
        return backend.name

    def probe(self) -> str:
        reason = self.backend.unavailable_reason()
        _require(reason is None, f"backend unavailable here: {reason}")
        _require(self.backend.is_available() is True, "is_available() is not True although probe() passed")
        return "available"

    def check_versions(self) -> str:
        versions = self.backend.versions()
        _require(isinstance(versions, dict), f"versions() returned {type(versions).__name__}, not dict")
        bad = {k: v for k, v in versions.items() if not (isinstance(k, str) and isinstance(v, str))}
        _require(not bad, f"versions() has non-str entries {bad!r}")
        return ", ".join(f"{k} {v}" for k, v in versions.items())

    def check_options(self) -> str:
        view = self.backend.options_to_dict(self.options())
        _require(isinstance(view, dict), f"options_to_dict() returned {type(view).__name__}, not dict")
        return ""

    def check_timer(self) -> str:
        timer = self.backend.timer()
        _require(isinstance(timer, Timer), f"timer() returned {timer!r}, not a Timer")
        marks = [timer.mark()]
        for _ in range(3):
            self.work()
            marks.append(timer.mark())
        timer.flush()
        steps = [timer.elapsed_ns(a, b) for a, b in zip(marks, marks[1:])]
        total = timer.elapsed_ns(marks[0], marks[-1])
        _require(all(isinstance(step, int) for step in steps + [total]), f"elapsed_ns returned non-int {steps!r}")
        _require(all(step >= 0 for step in steps), f"marks are not monotonic: elapsed {steps!r} ns")
        _require(total >= max(steps), f"whole span {total} ns shorter than a part {max(steps)} ns")
        _require(isinstance(timer.host_clock, bool), "host_clock is not a bool")
        return f"{len(marks)} marks over {total} ns"

    def check_synchronize(self) -> str:
        self.backend.synchronize()
        return ""

    def check_trace(self) -> str:
        trace, sink = self.open("conformance")
        push, pop = trace.markers()
        _require(callable(push) and callable(pop), f"markers() returned {(push, pop)!r}, not two callables")
        trace.start()
        try:
            handle = push("npuprofile.conformance.traced")
            try:
                self.work()
            finally:
                pop(handle)
            self.backend.synchronize()
        finally:
            trace.stop()
        self.first = trace
        written = _written(trace, sink)
        return ", ".join(path.name for path in written)

    def check_ranges(self) -> str:
        trace, _ = self.open("conformance-ranges")
        trace.start()
        try:
            outer = trace.push("npuprofile.conformance.outer")
            try:
                trace.pop(trace.push("npuprofile.conformance.inner"))
                push, pop = trace.markers()
                pop(push("npuprofile.conformance.marker"))
            finally:
                trace.pop(outer)
        finally:
            trace.stop()
        return ""

    def check_schedule(self) -> str:
        trace, sink = self.open("conformance-schedule", schedule=_config.schedule(wait=1, warmup=1, active=2, repeat=1))
        trace.start()
        try:
            for _ in range(5):
                self.work()
                trace.step()
        finally:
            trace.stop()
        return f"{len(_written(trace, sink))} path(s) after 5 steps"

    def check_op_table(self) -> str:
        _require(self.first is not None, "no stopped trace to read (the trace check failed before stop)")
        assert self.first is not None
        rows = self.first.op_table(5)
        _require(isinstance(rows, list), f"op_table() returned {type(rows).__name__}, not list")
        _require(len(rows) <= 5, f"op_table(limit=5) returned {len(rows)} rows")
        _require(all(isinstance(row, OpStat) for row in rows), "op_table() rows are not OpStat")
        return f"{len(rows)} rows"

    def check_isolation(self) -> str:
        """Two traces in turn, same directory and stem: the second reports none of the first's files."""
        written = []
        for _ in range(2):
            trace, sink = self.open("conformance-isolation")
            trace.start()
            self.work()
            trace.stop()
            written.append(set(_written(trace, sink)))
        before, after = written
        shared = sorted(path.name for path in before & after)
        _require(not shared, f"the second trace reports the first one's files: {shared}")
        return ""


def _written(trace: Trace, sink: TraceSink) -> list[Path]:
    """``trace.collect()``, checked: a list of existing, non-empty paths, all recorded in the sink."""
    written = trace.collect()
    _require(isinstance(written, list), f"collect() returned {type(written).__name__}, not list")
    _require(written, "no trace was written or reported")
    for path in written:
        _require(isinstance(path, Path), f"collect() returned {path!r}, not a Path")
        _require(path.exists(), f"reported trace {str(path)!r} does not exist")
        if path.is_file():
            _require(path.stat().st_size > 0, f"reported trace {str(path)!r} is empty")
        _require(path in sink.paths, f"collect() reported {str(path)!r} without recording it in the sink")
    return written


def _require(condition: Any, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def check_backend(
    backend: Backend,
    directory: str | Path,
    *,
    options: Any = _UNSET,
    workload: Callable[[], Any] | None = None,
) -> ConformanceReport:
    """Run the conformance checks against ``backend``, writing traces under ``directory``.

    ``options`` are the backend's parsed options (default: ``backend.options(None, {})``);
    ``workload`` is the code run between marks and inside the traced ranges
    (default: :func:`default_workload`). Checks after a failed availability
    probe are skipped, since they could only fail for the same reason.
    """
    suite = _Suite(backend, Path(directory), options, workload)
    if not (suite.check("identity", suite.identity) and suite.check("probe", suite.probe)):
        return ConformanceReport(str(getattr(backend, "name", backend)), suite.results)
    if suite.workload is None and not suite.check("workload", suite.make_workload):
        return ConformanceReport(backend.name, suite.results)
    for name in CHECKS:
        suite.check(name, getattr(suite, f"check_{name}"))
    return ConformanceReport(backend.name, suite.results)


__getattr__ = renamed(__name__, {"check_adapter": (f"{__name__}.check_backend", check_backend)})
