"""An adapter conformance suite that third parties can run against their own backend.

Every built-in adapter passes it (the CPU one, the NPU one against the test
fake of torch_npu, the CUDA one on a GPU). Use it from any test runner::

    from npuprofile.testing import check_adapter

    def test_my_adapter(tmp_path):
        check_adapter(MyAdapter(), tmp_path).raise_for_failures()

The suite needs the backend to be available on the machine it runs on.
"""

from __future__ import annotations

import dataclasses
import traceback
from pathlib import Path
from typing import Any, Callable

from npuprofile.backends.base import Adapter, OpStat, Timer
from npuprofile.sessions import config as _config
from npuprofile.sessions.files import TraceSink

__all__ = ["CheckResult", "ConformanceReport", "check_adapter", "default_workload"]

_UNSET: Any = object()


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """The outcome of one conformance check."""

    name: str
    ok: bool
    detail: str = ""


@dataclasses.dataclass
class ConformanceReport:
    """Every check run against one adapter."""

    adapter: str
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
            lines = [f"adapter {self.adapter!r} failed {len(self.failures)} conformance check(s):"]
            lines += [f"- {failure.name}: {failure.detail}" for failure in self.failures]
            raise AssertionError("\n".join(lines))
        return self

    def __str__(self) -> str:
        return "\n".join(f"{'ok  ' if r.ok else 'FAIL'} {r.name} {r.detail}".rstrip() for r in self.results)


def default_workload(adapter: Adapter) -> Callable[[], Any]:
    """A few small matrix products on the adapter's device (``torch_device``, default cpu)."""
    import torch

    device = getattr(adapter, "torch_device", "cpu")
    left = torch.rand(64, 64, device=device)
    right = torch.rand(64, 64, device=device)

    def run() -> Any:
        out = left
        for _ in range(4):
            out = torch.mm(out, right)
        return out

    return run


class _Suite:
    def __init__(self, adapter: Adapter, directory: Path, options: Any, workload: Callable[[], Any] | None) -> None:
        self.adapter = adapter
        self.directory = Path(directory)
        self.adapter_options = options
        self.workload = workload
        self.results: list[CheckResult] = []

    def check(self, name: str, body: Callable[[], str | None]) -> bool:
        try:
            detail = body() or ""
        except Exception as exc:
            tail = traceback.format_exception_only(type(exc), exc)[-1].strip()
            self.results.append(CheckResult(name, False, tail))
            return False
        self.results.append(CheckResult(name, True, detail))
        return True

    # -- the checks ------------------------------------------------------------------------
    def make_workload(self) -> str:
        self.workload = default_workload(self.adapter)
        return f"on {getattr(self.adapter, 'torch_device', 'cpu')}"

    def identity(self) -> str:
        adapter = self.adapter
        _require(isinstance(adapter, Adapter), f"{adapter!r} is not an npuprofile Adapter")
        _require(isinstance(adapter.name, str) and adapter.name.isidentifier(), f"name {adapter.name!r} is not an identifier")
        _require(isinstance(adapter.description, str), "description is not a str")
        return adapter.name

    def probe(self) -> str:
        reason = self.adapter.unavailable_reason()
        _require(reason is None, f"backend unavailable here: {reason}")
        _require(self.adapter.is_available() is True, "is_available() is not True although probe() passed")
        return "available"

    def versions(self) -> str:
        versions = self.adapter.versions()
        _require(isinstance(versions, dict), f"versions() returned {type(versions).__name__}, not dict")
        bad = {k: v for k, v in versions.items() if not (isinstance(k, str) and isinstance(v, str))}
        _require(not bad, f"versions() has non-str entries {bad!r}")
        return ", ".join(f"{k} {v}" for k, v in versions.items())

    def options(self) -> str:
        if self.adapter_options is _UNSET:
            self.adapter_options = self.adapter.parse_options(None, {})
        view = self.adapter.options_to_dict(self.adapter_options)
        _require(isinstance(view, dict), f"options_to_dict() returned {type(view).__name__}, not dict")
        return ""

    def timer(self) -> str:
        timer = self.adapter.timer()
        _require(isinstance(timer, Timer), f"timer() returned {timer!r}, not a Timer")
        work = self.workload or (lambda: None)
        marks = [timer.mark()]
        for _ in range(3):
            work()
            marks.append(timer.mark())
        timer.flush()
        steps = [timer.elapsed_ns(a, b) for a, b in zip(marks, marks[1:])]
        total = timer.elapsed_ns(marks[0], marks[-1])
        _require(all(isinstance(step, int) for step in steps + [total]), f"elapsed_ns returned non-int {steps!r}")
        _require(all(step >= 0 for step in steps), f"marks are not monotonic: elapsed {steps!r} ns")
        _require(total >= max(steps), f"whole span {total} ns shorter than a part {max(steps)} ns")
        _require(isinstance(timer.host_clock, bool), "host_clock is not a bool")
        return f"{len(marks)} marks over {total} ns"

    def synchronize(self) -> str:
        self.adapter.synchronize()
        return ""

    def ranges(self) -> str:
        outer = self.adapter.range_push("npuprofile.conformance.outer")
        try:
            inner = self.adapter.range_push("npuprofile.conformance.inner")
            self.adapter.range_pop(inner)
        finally:
            self.adapter.range_pop(outer)
        return ""

    def schedule(self) -> str:
        made = self.adapter.schedule(_config.schedule(wait=1, warmup=1, active=2))
        _require(callable(made), f"schedule() returned {made!r}, which is not callable")
        return ""

    def trace(self) -> str:
        adapter, options = self.adapter, self.adapter_options
        config = _config.resolve(environ={}, output_dir=str(self.directory), record_shapes=True)
        adapter.validate(config, options)
        sink = TraceSink(self.directory, "conformance")
        handler = adapter.trace_handler(sink, options)
        _require(callable(handler), f"trace_handler() returned {handler!r}, which is not callable")
        profiler = adapter.create_profiler(config, options, handler)
        for method in ("start", "stop", "step"):
            _require(callable(getattr(profiler, method, None)), f"profiler {profiler!r} has no {method}()")
        work = self.workload or (lambda: None)
        profiler.start()
        try:
            handle = adapter.range_push("npuprofile.conformance.traced")
            try:
                work()
            finally:
                adapter.range_pop(handle)
            adapter.synchronize()
        finally:
            profiler.stop()
        adapter.collect_traces(sink, options)
        _require(sink.paths, "no trace was written or reported to the TraceSink")
        for path in sink.paths:
            _require(path.exists(), f"reported trace {str(path)!r} does not exist")
            if path.is_file():
                _require(path.stat().st_size > 0, f"reported trace {str(path)!r} is empty")
        self._profiler = profiler
        return ", ".join(path.name for path in sink.paths)

    def op_table(self) -> str:
        rows = self.adapter.op_table(getattr(self, "_profiler", None), 5)
        _require(isinstance(rows, list), f"op_table() returned {type(rows).__name__}, not list")
        _require(len(rows) <= 5, f"op_table(limit=5) returned {len(rows)} rows")
        _require(all(isinstance(row, OpStat) for row in rows), "op_table() rows are not OpStat")
        return f"{len(rows)} rows"


def _require(condition: Any, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def check_adapter(
    adapter: Adapter,
    directory: str | Path,
    *,
    options: Any = _UNSET,
    workload: Callable[[], Any] | None = None,
) -> ConformanceReport:
    """Run the conformance checks against ``adapter``, writing traces under ``directory``.

    ``options`` are the adapter's parsed options (default: ``parse_options(None, {})``);
    ``workload`` is the code run between marks and inside the traced range
    (default: :func:`default_workload`). Checks after a failed availability
    probe are skipped, since they could only fail for the same reason.
    """
    suite = _Suite(adapter, Path(directory), options, workload)
    if not (suite.check("identity", suite.identity) and suite.check("probe", suite.probe)):
        return ConformanceReport(str(getattr(adapter, "name", adapter)), suite.results)
    if suite.workload is None and not suite.check("workload", suite.make_workload):
        return ConformanceReport(adapter.name, suite.results)
    for name in ("versions", "options", "timer", "synchronize", "ranges", "schedule", "trace", "op_table"):
        suite.check(name, getattr(suite, name))
    return ConformanceReport(adapter.name, suite.results)
