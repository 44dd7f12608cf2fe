"""The C accelerator and the pure-Python region path behave the same.

The core region tests of test_region.py run here once per implementation
(``python``: ``TimedRegion`` and the Python ``profile_region``; ``c``:
``npuprofile._speedups``), plus checks that only matter where the two meet:
C regions nested in Python ``Region`` objects and the other way round.
The ``c`` variant is skipped only when the extension is not built.
"""

from __future__ import annotations

import importlib.util
import shutil
import sysconfig
import time
from typing import Any, Iterator

import pytest

import npuprofile as npp
from npuprofile.core import region as _region
from npuprofile.core.env import pure_python_from_env
from npuprofile.errors import RegionError
from tests.fakes import register_manual
from tests.unit import test_region as core

#: Read at collection, before the shared fixture clears NPUPROFILE_* for each test.
PURE_PYTHON_REQUESTED = pure_python_from_env()


def _load_extension() -> Any:
    if importlib.util.find_spec("npuprofile._speedups") is None:
        return None
    from npuprofile import _speedups

    _region._setup_speedups(_speedups)  # harmless when the import already did it
    return _speedups


@pytest.fixture(params=["python", "c"])
def impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Route ``npp.profile_region`` and ``@profiled`` through one implementation."""
    if request.param == "c":
        speedups = _load_extension()
        if speedups is None:
            pytest.skip("npuprofile._speedups is not built")
        function, lean = speedups.profile_region, speedups.timed_region
    else:
        function, lean = _region._py_profile_region, _region.TimedRegion
    monkeypatch.setattr(npp, "profile_region", function)
    monkeypatch.setattr(_region, "profile_region", function)
    monkeypatch.setattr(_region, "_lean_region", lean)
    yield request.param


@pytest.fixture
def manual():
    return register_manual(npp.backends)


def _lean_type(impl: str) -> type:
    return _load_extension().TimedRegion if impl == "c" else _region.TimedRegion


# -- the core region tests, once per implementation ------------------------------------------


def test_lean_region_comes_from_the_chosen_implementation(impl: str, manual) -> None:
    with npp.session(backend="manual", trace=False):
        region = npp.profile_region("lean")
        assert type(region) is _lean_type(impl)
        assert type(npp.profile_region("full", sync=True)) is _region.Region


def test_idle_region_is_shared_noop(impl: str) -> None:
    core.test_idle_region_is_shared_noop()


@pytest.mark.parametrize("bad", ["", None, 3, b"x"])
def test_region_needs_a_name(impl: str, bad: object) -> None:
    core.test_region_needs_a_name(bad)


def test_nesting_and_self_time(impl: str, manual) -> None:
    core.test_nesting_and_self_time(manual)


def test_sync_region_synchronizes_at_entry_and_exit(impl: str, manual) -> None:
    core.test_sync_region_synchronizes_at_entry_and_exit(manual)


def test_exception_closes_region_and_propagates(impl: str, manual) -> None:
    core.test_exception_closes_region_and_propagates(manual)


def test_out_of_order_exit_closes_children(impl: str, manual, caplog: pytest.LogCaptureFixture) -> None:
    core.test_out_of_order_exit_closes_children(manual, caplog)


def test_region_object_cannot_be_reentered(impl: str, manual) -> None:
    core.test_region_object_cannot_be_reentered(manual)


def test_regions_left_open_are_closed_at_session_stop(impl: str, manual) -> None:
    core.test_regions_left_open_are_closed_at_session_stop(manual)


def test_threads_keep_separate_stacks(impl: str) -> None:
    core.test_threads_keep_separate_stacks()


def test_asyncio_tasks_keep_separate_stacks(impl: str) -> None:
    core.test_asyncio_tasks_keep_separate_stacks()


def test_random_nesting_gives_exact_statistics(impl: str) -> None:
    core.test_random_nesting_gives_exact_statistics()


def test_decorator_uses_the_lean_region(impl: str, manual) -> None:
    @npp.profiled("work")
    def work(ticks: int) -> str:
        manual.clock.advance(ticks)
        region = npp.current_region()
        assert region is not None
        return type(region).__name__

    with npp.session(backend="manual", trace=False) as s:
        with npp.profile_region("outer"):
            kinds = {work(3), work(4)}
    assert kinds == {"TimedRegion"}
    outer, inner = s.summary().region("outer"), s.summary().region("work")
    assert (inner.count, inner.total_ns, outer.total_ns, outer.self_ns) == (2, 7, 7, 0)


# -- where the two meet ------------------------------------------------------------------------


def test_lean_and_full_regions_nest_in_each_other(impl: str, manual) -> None:
    clock = manual.clock
    with npp.session(backend="manual", trace=False) as s:
        with npp.profile_region("lean-outer") as outer:
            clock.advance(2)
            with npp.profile_region("full", sync=True) as full:
                assert full.parent is outer
                clock.advance(3)
                with npp.profile_region("lean-inner") as inner:
                    assert inner.parent is full and npp.current_region() is inner
                    clock.advance(11)
            assert npp.current_region() is outer
    summary = s.summary()
    assert (summary.region("lean-inner").total_ns, summary.region("lean-inner").self_ns) == (11, 11)
    assert (summary.region("full").total_ns, summary.region("full").self_ns) == (14, 3)
    assert (summary.region("lean-outer").total_ns, summary.region("lean-outer").self_ns) == (16, 2)


def test_out_of_order_across_implementations(impl: str, manual, caplog: pytest.LogCaptureFixture) -> None:
    clock = manual.clock
    with npp.session(backend="manual", trace=False) as s:
        outer = npp.profile_region("outer", sync=True).__enter__()
        clock.advance(1)
        middle = npp.profile_region("middle").__enter__()
        clock.advance(2)
        npp.profile_region("inner").__enter__()
        clock.advance(4)
        outer.__exit__(None, None, None)  # middle and inner are still open: closed with it
        assert npp.current_region() is None and middle.state == 2
        middle.__exit__(None, None, None)  # ignored
    summary = s.summary()
    totals = {r.name: (r.count, r.total_ns, r.self_ns) for r in summary.regions}
    assert totals == {"outer": (1, 7, 1), "middle": (1, 6, 2), "inner": (1, 4, 4)}
    assert caplog.text.count("still open") == 2


def test_region_attributes_and_repr(impl: str, manual) -> None:
    with npp.session(backend="manual", trace=False):
        region = npp.profile_region("attrs")
        assert (region.name, region.state, region.child_ns) == ("attrs", 0, 0)
        assert repr(region) == "<Region 'attrs' new>"
        with region as entered:
            assert entered is region and region.state == 1 and region.parent is None
            assert repr(region) == "<Region 'attrs' open>"
            start = region.start
            manual.clock.advance(9)
        assert region.state == 2 and isinstance(start, int)
        assert repr(region) == "<Region 'attrs' closed>"


def test_exit_without_enter_raises(impl: str, manual) -> None:
    with npp.session(backend="manual", trace=False):
        with pytest.raises(RegionError, match="without being entered"):
            npp.profile_region("never").__exit__(None, None, None)


def test_keyword_name_and_bad_keywords(impl: str) -> None:
    assert npp.profile_region(name="by-keyword") is _region.IDLE_REGION
    with pytest.raises(TypeError):
        npp.profile_region("x", color="red")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        npp.profile_region("x", True)  # type: ignore[misc]


# -- the extension itself ----------------------------------------------------------------------


def _compiler_present() -> bool:
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(compiler) is not None


@pytest.mark.skipif(PURE_PYTHON_REQUESTED, reason="NPUPROFILE_PURE_PYTHON=1 asks for the pure-Python path")
def test_extension_is_built_and_used_where_a_compiler_exists() -> None:
    if not _compiler_present():
        pytest.skip("no C compiler: the pure-Python path is the expected one")
    assert _region.SPEEDUPS, "npuprofile._speedups did not build or import; run setup.py build_ext --inplace"
    assert npp.profile_region is _region._SPEEDUPS.profile_region


def test_pure_python_switch_is_honoured() -> None:
    if PURE_PYTHON_REQUESTED:
        assert not _region.SPEEDUPS and npp.profile_region is _region._py_profile_region
    else:
        assert _region.SPEEDUPS == (importlib.util.find_spec("npuprofile._speedups") is not None)


def test_extension_clock_is_perf_counter_ns() -> None:
    speedups = _load_extension()
    if speedups is None or not hasattr(speedups, "monotonic_ns"):
        pytest.skip("npuprofile._speedups is not built, or reads perf_counter_ns itself on this platform")
    for _ in range(1000):
        before = time.perf_counter_ns()
        now = speedups.monotonic_ns()
        after = time.perf_counter_ns()
        assert before <= now <= after
