"""Regions: the ``profile_region`` context manager, the active session's recorder, and the region stack.

The hot path is built for the idle case: with no session active, entering a
region is one check of a list's length. Inside a session a region takes two
clock marks; with a host clock its duration and self time go at exit into the
session's per-step samples (one dict lookup, one list append), which the
session folds into statistics at each step (:class:`~npuprofile.core.stats.Collector`).

The stack of open regions: each region links to its parent, the innermost
open region of its thread or asyncio task when it was entered. The region
entered last is kept in a :class:`contextvars.ContextVar`, so every thread and
every task has its own stack. Exits leave the variable alone: a closed region
stays there until the next region entered in the same thread or task skips it
(and any closed ancestors) to find its parent. Entering costs one get and one
set of the variable, exiting one get.

A region exited on another thread or task than the one that entered it is
counted once, at that exit; the thread or task that opened it skips it from
then on, so later regions there do not nest under it.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from typing import Any, Callable

from npuprofile.core import compile as _compile
from npuprofile.core.stats import escaped_name
from npuprofile.errors import RegionError

logger = logging.getLogger("npuprofile")


#: The active session's recorder, or empty. Its ``__len__`` is the decorator's enabled check.
ACTIVE: "list[Recorder]" = []
#: The region entered last in this thread or task (it may have closed since: see the module docstring).
_CURRENT: "contextvars.ContextVar[Region | None]" = contextvars.ContextVar("npuprofile_region", default=None)
_get_current = _CURRENT.get
_set_current = _CURRENT.set

_NEW, _OPEN, _CLOSED = 0, 1, 2


class Recorder:
    """What regions need from the active session: clock, markers, sync, and where timings go.

    With a host clock, a region's duration is known at exit and goes at once
    into ``samples`` (this step's durations per name) and, when regions nested
    in it took time, that time into ``nested`` (its self time is the rest); the
    session swaps in new dicts at each step. With a device clock (``deferred``),
    closed regions wait in ``buffer`` until the session resolves their events
    in bulk.
    """

    __slots__ = (
        "mark", "push", "pop", "synchronize", "buffer", "samples", "nested", "deferred", "closed", "timer", "on_error",
    )

    def __init__(
        self,
        timer: Any,
        synchronize: Callable[[], None],
        push: Callable[[str], Any] | None = None,
        pop: Callable[[Any], None] | None = None,
        on_error: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        self.timer = timer
        self.mark = timer.mark
        self.deferred = not timer.host_clock
        self.synchronize = synchronize
        self.push = push
        self.pop = pop
        self.buffer: list[Region] = []
        self.samples: dict[str, list[int]] = {}
        self.nested: dict[str, list[int]] = {}
        self.closed = False
        self.on_error = on_error

    def record(self, name: str, duration: int, self_ns: int) -> None:
        """Add one closed region's timings to this step's samples."""
        durations = self.samples.get(name)
        if durations is None:
            durations = self.samples.setdefault(name, [])
        durations.append(duration)
        if self_ns != duration:
            self.add_nested(name, duration - self_ns)

    def add_nested(self, name: str, child_ns: int) -> None:
        """Add the time of the regions nested in one closed region named ``name``."""
        nested = self.nested.get(name)
        if nested is None:
            nested = self.nested.setdefault(name, [])
        nested.append(child_ns)

    def drain(self) -> list["Region"]:
        """Take the deferred regions closed so far, safe against threads appending meanwhile."""
        count = len(self.buffer)
        taken = self.buffer[:count]
        del self.buffer[:count]
        return taken

    def marker_failed(self, action: str, exc: BaseException) -> None:
        """A range marker raised: stop using markers, report once through the session."""
        self.push = None
        self.pop = None
        if self.on_error is not None:
            self.on_error(action, exc)


def _open_ancestor(region: "Region | None") -> "Region | None":
    """``region`` or its nearest ancestor still open (``None`` if none is)."""
    while region is not None and region.state == _CLOSED:
        region = region.parent
    return region


class Region:
    """One timed range of code. Use :func:`profile_region` to make one."""

    __slots__ = ("name", "sync", "recorder", "parent", "start", "end", "child_ns", "handle", "state")

    def __init__(self, recorder: Recorder, name: str, sync: bool = False) -> None:
        self.recorder = recorder
        self.name = name
        self.sync = sync
        self.state = _NEW
        self.child_ns = 0
        self.handle: Any = None

    def __enter__(self) -> "Region":
        if self.state:
            raise RegionError(f"region {self.name!r} was already entered; create a new profile_region() to time again")
        recorder = self.recorder
        self.state = _OPEN
        self.parent = _open_ancestor(_get_current())
        _set_current(self)
        if self.sync:
            recorder.synchronize()
        push = recorder.push
        if push is not None:
            name = self.name
            try:
                self.handle = push(name if name.isascii() else escaped_name(name))
            except Exception as exc:
                try:
                    recorder.marker_failed("range_push", exc)
                except BaseException:
                    self.state = _CLOSED  # strict mode: the region never happened
                    raise
        self.start = recorder.mark()
        return self

    def __exit__(self, exc_type: Any = None, exc: Any = None, tb: Any = None) -> None:
        recorder = self.recorder
        if self.sync:
            recorder.synchronize()
        self._exit_at(recorder.mark())

    def _exit_at(self, end: Any) -> None:
        """Close this region at clock mark ``end``, whatever the state of the stack."""
        if self.state != _OPEN:
            if self.state == _CLOSED:
                logger.debug("npuprofile: region %r exited twice; the second exit is ignored", self.name)
                return
            raise RegionError(f"region {self.name!r} exited without being entered")
        top = _open_ancestor(_get_current())
        if top is not self:
            self._close_children(top, end)
        self._close(end)

    def _close_children(self, top: "Region | None", end: Any) -> None:
        """Exited out of order: close the regions still open above this one, at this one's end.

        When this region is not on the stack of the current thread or task at
        all (another one entered it), nothing else is closed: it is counted
        once, here, and its own thread or task skips it from now on.
        """
        chain = []
        node = top
        while node is not None and node is not self:
            chain.append(node)
            node = _open_ancestor(node.parent)
        if node is None:
            logger.debug("npuprofile: region %r exited outside the thread or task that entered it", self.name)
            return
        for child in chain:
            logger.warning(
                "npuprofile: region %r was still open when its parent %r exited; closed with it",
                child.name,
                self.name,
            )
            child._close(end)

    def _close(self, end: Any) -> None:
        self.end = end
        self.state = _CLOSED
        recorder = self.recorder
        if getattr(self, "handle", None) is not None:
            pop = recorder.pop
            if pop is not None:
                try:
                    pop(self.handle)
                except Exception as exc:
                    recorder.marker_failed("range_pop", exc)
            self.handle = None
        if recorder.deferred:
            recorder.buffer.append(self)
            return
        duration = end - self.start
        parent = self.parent
        if parent is not None:
            parent.child_ns += duration
        recorder.record(self.name, duration, duration - self.child_ns)

    def __repr__(self) -> str:
        return f"<Region {self.name!r} {('new', 'open', 'closed')[self.state]}>"


class TimedRegion(Region):
    """A region that only takes host clock marks (no markers, no sync): the lean path.

    Made by :func:`profile_region` (or :func:`_lean_region`) without an
    ``__init__`` call; its duration is known at exit and goes straight into the
    session's samples.
    """

    __slots__ = ()

    __init__ = object.__init__  # type: ignore[assignment]  # creation without a Python call; fields set by the maker

    def __enter__(self) -> "Region":
        if self.state:
            return Region.__enter__(self)  # raises: entered twice
        self.state = _OPEN
        parent = _get_current()
        while parent is not None and parent.state == _CLOSED:  # inline _open_ancestor: no call
            parent = parent.parent
        self.parent = parent
        _set_current(self)
        self.start = self.recorder.mark()
        return self

    def __exit__(self, exc_type: Any = None, exc: Any = None, tb: Any = None) -> None:
        recorder = self.recorder
        end = recorder.mark()
        if self.state != _OPEN:
            return self._exit_at(end)
        top = _get_current()
        if top is not self:  # the regions above this one must all have closed
            while top is not None and top is not self and top.state == _CLOSED:
                top = top.parent
            if top is not self:
                return self._exit_at(end)
        self.state = _CLOSED
        duration = end - self.start
        parent = self.parent
        if parent is not None:
            parent.child_ns += duration
        durations = recorder.samples.get(self.name)
        if durations is None:
            durations = recorder.samples.setdefault(self.name, [])
        durations.append(duration)
        if self.child_ns:  # a leaf's self time is its duration: nothing more to note
            recorder.add_nested(self.name, self.child_ns)


def _lean_region(recorder: Recorder, name: str) -> TimedRegion:
    """A new :class:`TimedRegion` of ``recorder`` named ``name`` (not entered)."""
    region = TimedRegion()
    region.recorder = recorder
    region.name = name
    region.state = _NEW
    region.child_ns = 0
    return region


#: The shared do-nothing region handed out while no session is active. A plain
#: ``contextlib.nullcontext`` because Dynamo can trace that one (``fullgraph=True``)
#: even though it was created outside the compiled function.
IDLE_REGION = contextlib.nullcontext()


def profile_region(name: str, *, sync: bool = False) -> Any:
    """A context manager that times the block it wraps as region ``name``.

    With no active session it does nothing (and costs almost nothing). Inside a
    session it feeds the session's statistics and, when tracing, labels the
    block in the trace. ``sync=True`` waits for the device at entry and exit so
    host time covers the device work. Regions nest freely.
    """
    if name.__class__ is not str or not name:
        raise RegionError(f"profile_region name must be a non-empty str, got {name!r}")
    if not ACTIVE:
        return IDLE_REGION
    recorder = ACTIVE[0]
    if sync or recorder.push is not None or recorder.deferred:
        return Region(recorder, name, sync)
    region = TimedRegion()
    region.recorder = recorder
    region.name = name
    region.state = _NEW
    region.child_ns = 0
    return region


@_compile.stand_in(profile_region)
def _profile_region_in_graph(name: str, *, sync: bool = False) -> Any:
    """What Dynamo traces instead of :func:`profile_region`: a no-op that is noted once."""
    _compile.note_compiled(name)
    return IDLE_REGION


def current_region() -> Region | None:
    """The innermost open region of this thread or task, or ``None``."""
    return _open_ancestor(_get_current())


def forget_closed() -> None:
    """Drop this thread's or task's reference to closed regions (so a stopped session can be freed)."""
    if _get_current() is not None and current_region() is None:
        _set_current(None)
