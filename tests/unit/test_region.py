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


# -- the lean path (TimedRegion) and the full path (Region) together ------------------------------


def test_lean_region_is_chosen_only_without_markers_sync_or_device_clock(manual) -> None:
    with npp.session(backend="manual", trace=False):
        assert type(npp.profile_region("lean")) is _region.TimedRegion
        assert type(npp.profile_region("full", sync=True)) is _region.Region


def test_decorator_uses_the_lean_region(manual) -> None:
    @npp.profiled("work")
    def work(ticks: int) -> type:
        manual.clock.advance(ticks)
        region = npp.current_region()
        assert region is not None
        return type(region)

    with npp.session(backend="manual", trace=False) as s:
        with npp.profile_region("outer"):
            kinds = {work(3), work(4)}
    assert kinds == {_region.TimedRegion}
    outer, inner = s.summary().region("outer"), s.summary().region("work")
    assert (inner.count, inner.total_ns, outer.total_ns, outer.self_ns) == (2, 7, 7, 0)


def test_lean_and_full_regions_nest_in_each_other(manual) -> None:
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


def test_out_of_order_exit_across_region_kinds(manual, caplog) -> None:
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
    totals = {r.name: (r.count, r.total_ns, r.self_ns) for r in s.summary().regions}
    assert totals == {"outer": (1, 7, 1), "middle": (1, 6, 2), "inner": (1, 4, 4)}
    assert caplog.text.count("still open") == 2


def test_region_attributes_and_repr(manual) -> None:
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


def test_exit_without_enter_raises(manual) -> None:
    with npp.session(backend="manual", trace=False):
        with pytest.raises(RegionError, match="without being entered"):
            npp.profile_region("never").__exit__(None, None, None)


def test_keyword_name_and_bad_keywords() -> None:
    assert npp.profile_region(name="by-keyword") is _region.IDLE_REGION
    with pytest.raises(TypeError):
        npp.profile_region("x", color="red")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        npp.profile_region("x", True)  # type: ignore[misc]


def test_closed_regions_are_skipped_when_finding_the_parent(manual) -> None:
    # Exits leave the context variable alone: the next region must still find its open parent.
    with npp.session(backend="manual", trace=False):
        with npp.profile_region("outer") as outer:
            for _ in range(3):
                with npp.profile_region("leaf") as leaf:
                    assert leaf.parent is outer
                assert npp.current_region() is outer
            with npp.profile_region("mid"):
                with npp.profile_region("deep"):
                    pass
            with npp.profile_region("after") as after:
                assert after.parent is outer
        assert npp.current_region() is None


# -- a region exited on another thread or task than the one that entered it -----------------------


def _exit_on_another_thread(region) -> None:
    worker = threading.Thread(target=region.__exit__, args=(None, None, None))
    worker.start()
    worker.join()


def test_region_exited_on_another_thread_counts_once_and_closes_where_it_opened(manual, caplog) -> None:
    clock = manual.clock
    with npp.session(backend="manual", trace=False) as s:
        with npp.profile_region("outer") as outer:
            clock.advance(1)
            handed_off = npp.profile_region("handed-off").__enter__()
            clock.advance(5)
            _exit_on_another_thread(handed_off)
            assert handed_off.state == 2
            assert npp.current_region() is outer  # the opening thread no longer sees it
            with npp.profile_region("later") as later:
                assert later.parent is outer  # later regions do not nest under it
                clock.advance(2)
            clock.advance(1)
    totals = {r.name: (r.count, r.total_ns, r.self_ns) for r in s.summary().regions}
    assert totals == {"outer": (1, 9, 2), "handed-off": (1, 5, 5), "later": (1, 2, 2)}
    assert "still open" not in caplog.text  # no spurious warning when the parent exits


def test_region_exited_on_another_thread_with_a_child_still_open_there(manual, caplog) -> None:
    clock = manual.clock
    with npp.session(backend="manual", trace=False) as s:
        parent = npp.profile_region("parent").__enter__()
        with npp.profile_region("child") as child:
            clock.advance(3)
            _exit_on_another_thread(parent)  # the child stays open on its own thread
            assert child.state == 1 and npp.current_region() is child
            clock.advance(4)
        assert npp.current_region() is None
    totals = {r.name: (r.count, r.total_ns) for r in s.summary().regions}
    assert totals == {"parent": (1, 3), "child": (1, 7)}
    assert "still open" not in caplog.text


def test_region_exited_in_another_task_counts_once() -> None:
    async def main() -> None:
        handed_off = npp.profile_region("handed-off").__enter__()

        async def closer() -> None:
            handed_off.__exit__(None, None, None)

        await asyncio.create_task(closer())
        assert npp.current_region() is None
        with npp.profile_region("later") as later:
            assert later.parent is None

    with npp.session(trace=False) as s:
        asyncio.run(main())
    assert {r.name: r.count for r in s.summary().regions} == {"handed-off": 1, "later": 1}


# -- names that are not valid UTF-8 ------------------------------------------------------------------


def test_name_with_a_lone_surrogate_is_stored_escaped_and_nothing_else_is_lost(tmp_path) -> None:
    import json

    from tests.conftest import load_trace, user_annotations

    bad = "file-\udcff.bin"
    with npp.session(output_dir=tmp_path) as s:
        for _ in s.steps(range(2)):
            with npp.profile_region(bad):
                pass
            with npp.profile_region("after"):
                pass
    assert s.degraded == []
    escaped = "file-\\udcff.bin"
    summary = s.summary()
    assert {r.name for r in summary.regions} == {escaped, "after"}
    assert summary.region(escaped).count == 2
    assert all(set(step.regions) == {escaped, "after"} for step in summary.steps)
    written = json.loads(next(p for p in s.summary_paths if p.suffix == ".json").read_text(encoding="utf-8"))
    assert {row["name"] for row in written["regions"]} == {escaped, "after"}
    names = [e["name"] for e in user_annotations(load_trace(s.trace_paths[0]))]
    # markers kept working (torch's exporter writes the escape's backslash as a slash)
    assert sum("udcff" in name for name in names) == 2 and names.count("after") == 2


def test_task_regions_nest_under_a_region_opened_before_the_loop(manual) -> None:
    parents: list[object] = []

    async def task() -> None:
        with npp.profile_region("in-task") as inner:
            parents.append(inner.parent)
            await asyncio.sleep(0)
            assert npp.current_region() is inner

    async def main() -> None:
        await asyncio.gather(task(), task())

    with npp.session(backend="manual", trace=False) as s:
        with npp.profile_region("outer") as outer:
            asyncio.run(main())
            assert npp.current_region() is outer
        with npp.profile_region("after") as after:
            assert after.parent is None
    assert parents == [outer, outer]
    assert {r.name: r.count for r in s.summary().regions} == {"outer": 1, "in-task": 2, "after": 1}
