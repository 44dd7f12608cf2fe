"""Region nesting, self time, out-of-order exits, threads and asyncio tasks."""

from __future__ import annotations

import asyncio
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npuprofile as npp
from npuprofile.core import region as _region
from npuprofile.errors import RegionError
from tests.fakes import register_manual


@pytest.fixture
def manual():
    return register_manual(npp.backends)


def test_idle_region_is_shared_noop() -> None:
    assert npp.profile_region("a") is npp.profile_region("b")
    with npp.profile_region("a") as region:
        assert npp.current_region() is None
    assert region is None  # IDLE_REGION is a contextlib.nullcontext so Dynamo can trace it
    assert npp.profile_region("c") is _region.IDLE_REGION


@pytest.mark.parametrize("bad", ["", None, 3, b"x"])
def test_region_needs_a_name(bad: object) -> None:
    with pytest.raises(RegionError, match="non-empty str"):
        npp.profile_region(bad)  # type: ignore[arg-type]


def test_nesting_and_self_time(manual) -> None:
    clock = manual.clock
    with npp.session(backend="manual", trace=False) as s:
        with npp.profile_region("outer"):
            clock.advance(10)
            with npp.profile_region("inner"):
                clock.advance(30)
                assert npp.current_region().name == "inner"
            clock.advance(5)
            with npp.profile_region("inner"):
                clock.advance(20)
    summary = s.summary()
    outer, inner = summary.region("outer"), summary.region("inner")
    assert (outer.count, outer.total_ns, outer.self_ns) == (1, 65, 15)
    assert (inner.count, inner.total_ns, inner.self_ns, inner.min_ns, inner.max_ns) == (2, 50, 50, 20, 30)


def test_sync_region_synchronizes_at_entry_and_exit(manual) -> None:
    with npp.session(backend="manual", trace=False):
        with npp.profile_region("s", sync=True):
            pass
        with npp.profile_region("plain"):
            pass
    assert manual.syncs == 2


def test_exception_closes_region_and_propagates(manual) -> None:
    with npp.session(backend="manual", trace=False) as s:
        with pytest.raises(ZeroDivisionError):
            with npp.profile_region("outer"):
                with npp.profile_region("inner"):
                    1 / 0
        assert npp.current_region() is None
    assert {r.name: r.count for r in s.summary().regions} == {"outer": 1, "inner": 1}


def test_out_of_order_exit_closes_children(manual, caplog) -> None:
    clock = manual.clock
    with npp.session(backend="manual", trace=False) as s:
        outer = npp.profile_region("outer").__enter__()
        clock.advance(5)
        inner = npp.profile_region("inner").__enter__()
        clock.advance(7)
        outer.__exit__(None, None, None)  # inner still open
        assert npp.current_region() is None
        inner.__exit__(None, None, None)  # second close is ignored
        outer.__exit__(None, None, None)
    summary = s.summary()
    assert summary.region("inner").count == 1 and summary.region("inner").total_ns == 7
    assert summary.region("outer").total_ns == 12 and summary.region("outer").self_ns == 5
    assert "still open" in caplog.text


def test_region_object_cannot_be_reentered(manual) -> None:
    with npp.session(backend="manual", trace=False):
        region = npp.profile_region("once")
        with region:
            pass
        with pytest.raises(RegionError, match="already entered"):
            region.__enter__()


def test_regions_left_open_are_closed_at_session_stop(manual) -> None:
    s = npp.session(backend="manual", trace=False).start()
    npp.profile_region("dangling").__enter__()
    s.stop()
    assert s.summary().region("dangling").count == 1
    assert npp.current_region() is None


def test_threads_keep_separate_stacks() -> None:
    errors: list[str] = []
    iterations = 300

    def work(tid: int) -> None:
        for _ in range(iterations):
            with npp.profile_region(f"t{tid}"):
                with npp.profile_region("child"):
                    current = npp.current_region()
                    if current is None or current.parent is None or current.parent.name != f"t{tid}":
                        errors.append(f"thread {tid} saw {current!r}")

    with npp.session(trace=False) as s:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    counts = {r.name: r.count for r in s.summary().regions}
    assert counts == {**{f"t{i}": iterations for i in range(8)}, "child": 8 * iterations}


def test_asyncio_tasks_keep_separate_stacks() -> None:
    errors: list[str] = []

    async def task(tid: int) -> None:
        for _ in range(20):
            with npp.profile_region(f"task{tid}"):
                await asyncio.sleep(0)
                with npp.profile_region("inner"):
                    await asyncio.sleep(0)
                    parent = npp.current_region().parent
                    if parent is None or parent.name != f"task{tid}":
                        errors.append(f"task {tid} saw parent {parent!r}")

    async def main() -> None:
        await asyncio.gather(*(task(i) for i in range(100)))

    with npp.session(trace=False) as s:
        asyncio.run(main())
    assert errors == []
    summary = s.summary()
    assert summary.region("inner").count == 2000
    assert all(summary.region(f"task{i}").count == 20 for i in range(100))


# A random tree of regions: each node is (name, ticks before children, children, raises).
names = st.sampled_from(["a", "b", "c", "d"])
trees = st.recursive(
    st.tuples(names, st.integers(0, 50), st.just(()), st.booleans()),
    lambda children: st.tuples(names, st.integers(0, 50), st.lists(children, max_size=3).map(tuple), st.booleans()),
    max_leaves=12,
)


class Boom(Exception):
    pass


def expected(tree, totals, selfs, counts) -> int:
    name, ticks, children, _ = tree
    child_total = sum(expected(c, totals, selfs, counts) for c in children)
    total = ticks + child_total
    totals[name] = totals.get(name, 0) + total
    selfs[name] = selfs.get(name, 0) + ticks
    counts[name] = counts.get(name, 0) + 1
    return total


def run(tree, clock) -> None:
    name, ticks, children, raises = tree
    with npp.profile_region(name):
        clock.advance(ticks)
        for child in children:
            try:
                run(child, clock)
            except Boom:
                pass
        if raises:
            raise Boom


@settings(max_examples=60, deadline=None)
@given(forest=st.lists(trees, min_size=1, max_size=4))
def test_random_nesting_gives_exact_statistics(forest) -> None:
    npp.backends.reset()
    _region.ACTIVE.clear()
    adapter = register_manual(npp.backends)
    totals: dict[str, int] = {}
    selfs: dict[str, int] = {}
    counts: dict[str, int] = {}
    for tree in forest:
        expected(tree, totals, selfs, counts)
    with npp.session(backend="manual", trace=False) as s:
        for tree in forest:
            try:
                run(tree, adapter.clock)
            except Boom:
                pass
        assert npp.current_region() is None
    summary = s.summary()
    assert {r.name: r.count for r in summary.regions} == counts
    assert {r.name: r.total_ns for r in summary.regions} == totals
    assert {r.name: r.self_ns for r in summary.regions} == selfs
