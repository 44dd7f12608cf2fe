"""Regions: the ``profile_region`` context manager, the active session's recorder, and the region stack.

The hot path is built for the idle case: with no session active, entering a
region is one check of a list's length. Inside a session a region takes two
clock marks; with a host clock its duration goes at exit into the session's
per-step samples (one dict lookup, one list append), which the session folds
into statistics at each step (:class:`~npuprofile.core.collector.Collector`).

The stack of open regions: each region links to its parent, the innermost
open region of its thread or asyncio task when it was entered. Outside a
running event loop each thread keeps its innermost open region in a
:class:`threading.local` (set at entry, reset to the parent at exit). Inside a
running event loop tasks interleave on one thread, so there the region
entered last is kept in a
:class:`contextvars.ContextVar` (every task has its own); exits leave that
variable alone, and the next region entered in the task skips the closed ones
to find its parent.

A region exited on another thread or task than the one that entered it is
counted once, at that exit, and taken off the stack of the thread or task that
opened it, so later regions there do not nest under it.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections import defaultdict
from typing import Any, Callable

from npuprofile.core import compile as _compile
from npuprofile.core import graph as _graph
from npuprofile.core.stats import escaped_name
from npuprofile.errors import RegionError

logger = logging.getLogger("npuprofile")


#: The active session's recorder, or empty. Its ``__len__`` is the decorator's enabled check.
ACTIVE: "list[Recorder]" = []
#: The region entered last in this asyncio task (it may have closed since: see the module docstring).
_CURRENT: "contextvars.ContextVar[Region | None]" = contextvars.ContextVar("npuprofile_region", default=None)
_get_current = _CURRENT.get
_set_current = _CURRENT.set


class _ThreadStack:
    """One thread's open regions outside an event loop: the innermost in ``top``, the rest by ``parent``."""

    __slots__ = ("top",)

    def __init__(self) -> None:
        self.top: Region | None = None


#: ``_LOCAL.stack``: this thread's :class:`_ThreadStack`.
_LOCAL = threading.local()


def _new_thread_stack() -> _ThreadStack:
    stack = _LOCAL.stack = _ThreadStack()
    return stack


def _thread_stack() -> _ThreadStack | None:
    """This thread's stack of open regions, if it has one."""
    stack: _ThreadStack | None = getattr(_LOCAL, "stack", None)
    return stack


def _first_running_loop() -> Any:
    """``asyncio``'s running-loop getter, imported on first use (then called directly)."""
    global _running_loop
    from asyncio import events

    _running_loop = events._get_running_loop
    return _running_loop()


#: The event loop running in this thread, or None (asyncio's C getter once imported).
_running_loop: Callable[[], Any] = _first_running_loop

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
        "mark", "push", "pop", "synchronize", "buffer", "samples", "nested", "deferred", "lean", "closed", "timer",
        "on_error",
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
        #: Whether plain regions can take the lean path (:class:`TimedRegion`): host clock, no markers.
        self.lean = push is None and not self.deferred
        self.buffer: list[Region] = []
        # Each makes a name's list on its first sample (in C: atomic under the GIL, like setdefault).
        self.samples: defaultdict[str, list[int]] = defaultdict(list)
        self.nested: defaultdict[str, list[int]] = defaultdict(list)
        self.closed = False
        self.on_error = on_error

    def record(self, name: str, duration: int, self_ns: int) -> None:
        """Add one closed region's timings to this step's samples."""
        self.samples[name].append(duration)
        if self_ns != duration:
            self.add_nested(name, duration - self_ns)

    def add_nested(self, name: str, child_ns: int) -> None:
        """Add the time of the regions nested in one closed region named ``name``."""
        self.nested[name].append(child_ns)

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
        self.lean = not self.deferred
        if self.on_error is not None:
            self.on_error(action, exc)


def _open_ancestor(region: "Region | None") -> "Region | None":
    """``region`` or its nearest ancestor still open (``None`` if none is)."""
    while region is not None and region.state == _CLOSED:
        region = region.parent
    return region


class Region:
    """One timed range of code. Use :func:`profile_region` to make one."""

    __slots__ = ("name", "sync", "recorder", "parent", "stack", "start", "end", "child_ns", "handle", "state")

    name: str
    sync: bool
    recorder: Recorder
    #: The innermost open region of this thread or task when this one was entered.
    parent: Region | None
    #: The thread's stack this region is on (``None``: a region of an asyncio task).
    stack: _ThreadStack | None
    start: Any
    end: Any
    #: Time of the regions nested directly in this one (its self time is the rest).
    child_ns: int
    handle: Any
    #: 0 new, 1 open, 2 closed.
    state: int

    def __init__(self, recorder: Recorder, name: str, sync: bool = False) -> None:
        self.recorder = recorder
        self.name = name
        self.sync = sync
        self.state = _NEW
        self.child_ns = 0
        self.handle = None

    def __enter__(self) -> "Region":
        if self.state:
            raise RegionError(f"region {self.name!r} was already entered; create a new profile_region() to time again")
        recorder = self.recorder
        self.state = _OPEN
        self._push()
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
                except BaseException:  # strict mode: the region never happened
                    if self.stack is not None and self.stack.top is self:
                        self.stack.top = self.parent
                    self.state = _CLOSED
                    raise
        self.start = recorder.mark()
        return self

    def __exit__(self, exc_type: Any = None, exc: Any = None, tb: Any = None) -> None:
        recorder = self.recorder
        if self.sync:
            recorder.synchronize()
        self._exit_at(recorder.mark())

    def _push(self) -> None:
        """Become the innermost open region of this thread (or, in a running event loop, of this task)."""
        if _running_loop() is None:
            stack = _thread_stack() or _new_thread_stack()
            self.stack = stack
            self.parent = stack.top
            stack.top = self
            return
        self.stack = None
        parent = _open_ancestor(_get_current())
        if parent is None:  # the task runs inside regions entered before the loop started
            outer = _thread_stack()
            parent = outer.top if outer is not None else None
        self.parent = parent
        _set_current(self)

    def _unwind(self) -> "list[Region]":
        """Take this region off its thread's stack; the regions above it there, innermost first.

        Only the current thread's own regions are closed with it: on another
        thread's stack the region above it is relinked to this one's parent.
        """
        stack = self.stack
        if stack is None:
            return []
        above = []
        node = stack.top
        while node is not None and node is not self:
            above.append(node)
            node = node.parent
        if node is None:
            return []  # not on the stack (already taken off)
        if stack is not _thread_stack():
            if above:
                above[-1].parent = self.parent
            else:
                stack.top = self.parent
            self._elsewhere()
            return []
        stack.top = self.parent
        return above

    def _exit_at(self, end: Any) -> None:
        """Close this region at clock mark ``end``, whatever the state of the stack."""
        if self.state != _OPEN:
            if self.state == _CLOSED:
                logger.debug("npuprofile: region %r exited twice; the second exit is ignored", self.name)
                return
            raise RegionError(f"region {self.name!r} exited without being entered")
        stack = self.stack
        if stack is not None and stack.top is self:
            stack.top = self.parent
            children: list[Region] = []
        elif stack is not None:
            children = self._unwind()
        else:
            children = self._task_children()
        for child in children:
            logger.warning(
                "npuprofile: region %r was still open when its parent %r exited; closed with it",
                child.name,
                self.name,
            )
            child._close(end)
        self._close(end)

    def _task_children(self) -> "list[Region]":
        """The regions of this task still open above this one, innermost first (a task region's exit)."""
        chain = []
        node = _open_ancestor(_get_current())
        while node is not None and node is not self:
            chain.append(node)
            node = _open_ancestor(node.parent)
        if node is None:  # entered in another task: counted here, once; that task skips it from now on
            self._elsewhere()
            return []
        return chain

    def _elsewhere(self) -> None:
        logger.debug("npuprofile: region %r exited outside the thread or task that entered it", self.name)

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

    __init__ = object.__init__  # creation without a Python call; the maker sets the fields

    # The hot paths spell the states as literals (0 new, 1 open, 2 closed): a constant is cheaper than a global.

    def __enter__(self) -> "Region":
        if self.state:
            return Region.__enter__(self)  # raises: entered twice
        self.state = 1
        if _running_loop() is None:  # Region._push, inlined
            try:
                stack = _LOCAL.stack
            except AttributeError:
                stack = _new_thread_stack()
            self.stack = stack
            self.parent = stack.top
            stack.top = self
        else:
            self._push()
        mark = self.recorder.mark  # an attribute, then a call: cheaper than calling it as a method
        self.start = mark()
        return self

    def __exit__(self, exc_type: Any = None, exc: Any = None, tb: Any = None) -> None:
        recorder = self.recorder
        mark = recorder.mark
        end = mark()
        if self.state != 1:
            return self._exit_at(end)
        stack = self.stack
        if stack is None or stack.top is not self:
            return self._exit_at(end)
        parent = stack.top = self.parent
        self.state = 2
        duration = end - self.start
        if parent is not None:
            parent.child_ns += duration
        recorder.samples[self.name].append(duration)
        if self.child_ns:  # a leaf's self time is its duration: nothing more to note
            recorder.add_nested(self.name, self.child_ns)


def _lean_region(recorder: Recorder, name: str) -> TimedRegion:
    """A new :class:`TimedRegion` of ``recorder`` named ``name`` (not entered)."""
    region: TimedRegion = TimedRegion()
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
    if sync or not recorder.lean:
        return Region(recorder, name, sync)
    region = TimedRegion()
    region.recorder = recorder
    region.name = name
    region.state = 0
    region.child_ns = 0
    return region


@_compile.stand_in(profile_region)
def _profile_region_in_graph(name: str, *, sync: bool = False) -> Any:
    """What Dynamo traces instead of :func:`profile_region`: a range of the graph (see :mod:`npuprofile.core.graph`)."""
    if name.__class__ is not str or not name:
        raise RegionError(f"profile_region name must be a non-empty str, got {name!r}")
    return _graph.GraphRange(name)


def current_region() -> Region | None:
    """The innermost open region of this thread or task, or ``None``."""
    if _running_loop() is not None:
        top = _open_ancestor(_get_current())
        if top is not None:
            return top
    stack = _thread_stack()
    return stack.top if stack is not None else None


def forget_closed() -> None:
    """Drop this task's reference to closed regions (so a stopped session can be freed)."""
    if _get_current() is not None and _open_ancestor(_get_current()) is None:
        _set_current(None)
