"""Regions: the ``profile_region`` context manager, the ``@profiled`` decorator, and the region stack.

The hot path is built for the idle case: with no session active, entering a
region is one check of a list's length. Inside a session a region takes two
clock marks and appends itself to the session's buffer; the session resolves
durations and self times in bulk (:meth:`Recorder.drain`).

The stack of open regions is a linked list whose top lives in a
:class:`contextvars.ContextVar`, so every thread and every asyncio task has its
own nesting.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from typing import Any, Callable

from npuprofile.core import compile as _compile
from npuprofile.core import graph as _graph
from npuprofile.core.env import pure_python_from_env
from npuprofile.core.stats import Samples
from npuprofile.errors import RegionError

logger = logging.getLogger("npuprofile")


#: The active session's recorder, or empty. Its ``__len__`` is the decorator's enabled check.
ACTIVE: "list[Recorder]" = []
_CURRENT: "contextvars.ContextVar[Region | None]" = contextvars.ContextVar("npuprofile_region", default=None)
_get_current = _CURRENT.get
_set_current = _CURRENT.set


class Recorder:
    """What regions need from the active session: clock, markers, sync, and where timings go.

    With a host clock, a region's duration is known at exit and recorded at
    once into ``samples``. With a device clock (``deferred``), closed regions
    wait in ``buffer`` until the session resolves their events in bulk.
    """

    __slots__ = ("mark", "push", "pop", "synchronize", "buffer", "samples", "deferred", "closed", "timer", "on_error")

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
        self.samples: dict[str, Samples] = {}
        self.closed = False
        self.on_error = on_error

    def record(self, name: str, duration: int, self_ns: int) -> None:
        """Add one closed region's timings."""
        samples = self.samples.get(name)
        if samples is None:
            samples = self.samples.setdefault(name, Samples())
        samples.durations.append(duration)
        samples.selfs.append(self_ns)

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


class Region:
    """One timed range of code. Use :func:`profile_region` to make one."""

    __slots__ = ("name", "sync", "recorder", "parent", "start", "end", "child_ns", "handle", "state")

    # state: 0 = not entered, 1 = open, 2 = closed

    def __init__(self, recorder: Recorder, name: str, sync: bool = False) -> None:
        self.recorder = recorder
        self.name = name
        self.sync = sync
        self.state = 0
        self.child_ns = 0
        self.handle: Any = None

    def __enter__(self) -> "Region":
        if self.state:
            raise RegionError(f"region {self.name!r} was already entered; create a new profile_region() to time again")
        recorder = self.recorder
        self.parent = _CURRENT.get()
        _CURRENT.set(self)
        self.state = 1
        if self.sync:
            recorder.synchronize()
        push = recorder.push
        if push is not None:
            try:
                self.handle = push(self.name)
            except Exception as exc:
                try:
                    recorder.marker_failed("range_push", exc)
                except BaseException:
                    _CURRENT.set(self.parent)  # strict mode: leave the stack as it was
                    self.state = 2
                    raise
        self.start = recorder.mark()
        return self

    def __exit__(self, exc_type: Any = None, exc: Any = None, tb: Any = None) -> None:
        recorder = self.recorder
        if self.sync:
            recorder.synchronize()
        self._exit_slow(recorder.mark())

    def _exit_slow(self, end: Any) -> None:
        if self.state != 1:
            if self.state == 2:
                logger.debug("npuprofile: region %r exited twice; the second exit is ignored", self.name)
                return
            raise RegionError(f"region {self.name!r} exited without being entered")
        current = _CURRENT.get()
        on_stack = current is self or self._close_children(current, end)
        self._close(end)
        if on_stack:
            _CURRENT.set(self.parent)

    def _close(self, end: Any) -> None:
        self.end = end
        self.state = 2
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

    def _close_children(self, current: "Region | None", end: Any) -> bool:
        """Closed out of order: close the regions still open above this one, at this one's end.

        Returns False when this region is not on the current stack at all (it
        is being exited from another thread or task than the one that entered it).
        """
        chain = []
        node = current
        while node is not None and node is not self:
            chain.append(node)
            node = node.parent
        if node is None:
            logger.debug("npuprofile: region %r exited outside the context that entered it", self.name)
            return False
        for child in chain:
            logger.warning(
                "npuprofile: region %r was still open when its parent %r exited; closed with it",
                child.name,
                self.name,
            )
            child._close(end)
        return True

    def __repr__(self) -> str:
        return f"<Region {self.name!r} {('new', 'open', 'closed')[self.state]}>"


class TimedRegion(Region):
    """A region that only takes host clock marks (no markers, no sync): the lean path.

    Its duration is known at exit and goes straight into the session's samples.
    """

    __slots__ = ()

    def __init__(self, recorder: Recorder, name: str) -> None:  # noqa: D107 - minimal on purpose
        self.recorder = recorder
        self.name = name
        self.state = 0
        self.child_ns = 0

    def __enter__(self) -> "Region":
        if self.state:
            return Region.__enter__(self)  # raises: entered twice
        self.state = 1
        self.parent = _get_current()
        _set_current(self)
        self.start = self.recorder.mark()
        return self

    def __exit__(self, exc_type: Any = None, exc: Any = None, tb: Any = None) -> None:
        recorder = self.recorder
        end = recorder.mark()
        if self.state != 1 or _get_current() is not self:
            return self._exit_slow(end)
        parent = self.parent
        _set_current(parent)
        self.state = 2
        duration = end - self.start
        if parent is not None:
            parent.child_ns += duration
        samples = recorder.samples.get(self.name)
        if samples is None:
            samples = recorder.samples.setdefault(self.name, Samples())
        samples.durations.append(duration)
        samples.selfs.append(duration - self.child_ns)


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
    return TimedRegion(recorder, name)


#: The pure-Python :func:`profile_region`, kept for tests and comparisons when the C one is used.
_py_profile_region = profile_region


def _load_speedups() -> Any:
    """The optional C accelerator, handed this module's objects; None if not built or not wanted."""
    if pure_python_from_env():
        return None
    try:
        from npuprofile import _speedups
    except ImportError:
        return None
    _setup_speedups(_speedups)
    return _speedups


def _setup_speedups(module: Any) -> None:
    """Hand the C accelerator the objects of this module it works with (it calls back into ``Region``)."""
    module.setup(
        _CURRENT, ACTIVE, Recorder, Region, Samples, Region._exit_slow, Region._close, Region._close_children,
        Region.__repr__, RegionError, IDLE_REGION,
    )


_SPEEDUPS = _load_speedups()
#: Whether the C accelerator runs the lean path (built, and ``NPUPROFILE_PURE_PYTHON`` not set at import).
SPEEDUPS = _SPEEDUPS is not None
#: Makes a lean region (host clock only): the C type when available, else :class:`TimedRegion`.
_lean_region: Callable[[Recorder, str], Any] = _SPEEDUPS.timed_region if SPEEDUPS else TimedRegion
if SPEEDUPS:
    profile_region = _SPEEDUPS.profile_region  # noqa: F811 - same semantics, in C


@_compile.stand_in(profile_region)
def _profile_region_in_graph(name: str, *, sync: bool = False) -> Any:
    """What Dynamo traces instead of :func:`profile_region`: a range of the graph (see :mod:`npuprofile.core.graph`)."""
    return _graph.GraphRange(name)


def current_region() -> Region | None:
    """The innermost open region of this thread or task, or ``None``."""
    return _CURRENT.get()
