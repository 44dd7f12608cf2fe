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
from typing import Any, Callable, TypeVar, overload

from npuprofile.core import compile as _compile
from npuprofile.core.env import pure_python_from_env
from npuprofile.core.stats import Samples
from npuprofile.errors import RegionError

logger = logging.getLogger("npuprofile")

F = TypeVar("F", bound=Callable[..., Any])

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
    """What Dynamo traces instead of :func:`profile_region`: a no-op that is noted once."""
    _compile.note_compiled(name)
    return IDLE_REGION


def current_region() -> Region | None:
    """The innermost open region of this thread or task, or ``None``."""
    return _CURRENT.get()


# -- the decorator ---------------------------------------------------------------------------


_FUNCTION_TYPE = type(lambda: None)
_PROFILED_FUNCTION: Any = None


def profiled_function_type() -> Any:
    """The wrapper class ``@profiled`` returns (built on first use, so importing npuprofile skips wrapt)."""
    global _PROFILED_FUNCTION
    if _PROFILED_FUNCTION is not None:
        return _PROFILED_FUNCTION
    import wrapt

    class ProfiledFunction(wrapt.FunctionWrapper):
        """A function wrapped by ``@profiled``: behaves as the function (signature, ``inspect``, methods)."""

        def __get__(self, instance: Any, owner: Any = None) -> Any:
            # Idle, a method lookup returns the plain bound method: binding through
            # wrapt costs microseconds, and with no session there is nothing to time.
            if instance is not None and not ACTIVE:
                wrapped = self.__wrapped__
                if wrapped.__class__ is _FUNCTION_TYPE:
                    return wrapped.__get__(instance, owner)
            return super().__get__(instance, owner)

        def __reduce_ex__(self, protocol: int) -> Any:
            # Pickle by reference, as plain functions are: the module attribute is this wrapper.
            return self.__qualname__

        def __reduce__(self) -> Any:
            return self.__qualname__

        @property
        def _torchdynamo_inline(self) -> Callable[..., Any]:
            # Dynamo sees through the wrapper (it reports the wrapped function's class) and
            # would inline the bare function; this hook makes it inline this stand-in instead,
            # so the region is noted rather than silently dropped. Eager calls never read it.
            name = self._self_region_name
            wrapped = self.__wrapped__

            def in_graph(*args: Any, **kwargs: Any) -> Any:
                if _compile.READY:
                    _compile.note_compiled(name)
                return wrapped(*args, **kwargs)

            return in_graph

    ProfiledFunction.__module__ = __name__
    _PROFILED_FUNCTION = ProfiledFunction
    return ProfiledFunction


def _plain_wrapper(name: str, sync: bool) -> Callable[..., Any]:
    def call(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        if not ACTIVE:
            return wrapped(*args, **kwargs)
        recorder = ACTIVE[0]
        lean = not (sync or recorder.push is not None or recorder.deferred)
        with _lean_region(recorder, name) if lean else Region(recorder, name, sync):
            return wrapped(*args, **kwargs)

    return call


def _coroutine_wrapper(name: str, sync: bool) -> Callable[..., Any]:
    def call(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        async def timed() -> Any:
            with profile_region(name, sync=sync):
                return await wrapped(*args, **kwargs)

        return timed()

    return call


def _generator_wrapper(name: str, sync: bool) -> Callable[..., Any]:
    def call(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        return _timed_generator(wrapped(*args, **kwargs), name, sync)

    return call


def _timed_generator(generator: Any, name: str, sync: bool) -> Any:
    """Drive ``generator``, timing each resume as one region (time suspended is not counted)."""
    to_send: Any = None
    to_throw: BaseException | None = None
    while True:
        with profile_region(name, sync=sync):
            try:
                item = generator.throw(to_throw) if to_throw is not None else generator.send(to_send)
            except StopIteration as stop:
                return stop.value
        to_throw = None
        try:
            to_send = yield item
        except GeneratorExit:
            generator.close()
            raise
        except BaseException as exc:  # thrown in by the caller: pass it on
            to_throw = exc


def _async_generator_wrapper(name: str, sync: bool) -> Callable[..., Any]:
    def call(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        return _timed_async_generator(wrapped(*args, **kwargs), name, sync)

    return call


async def _timed_async_generator(generator: Any, name: str, sync: bool) -> Any:
    """Drive an async generator, timing each resume as one region."""
    to_send: Any = None
    to_throw: BaseException | None = None
    while True:
        with profile_region(name, sync=sync):
            try:
                if to_throw is not None:
                    item = await generator.athrow(to_throw)
                else:
                    item = await generator.asend(to_send)
            except StopAsyncIteration:
                return
        to_throw = None
        try:
            to_send = yield item
        except GeneratorExit:
            await generator.aclose()
            raise
        except BaseException as exc:
            to_throw = exc


def _wrapper_for(func: Callable[..., Any]) -> Callable[[str, bool], Callable[..., Any]]:
    import inspect

    if inspect.isasyncgenfunction(func):
        return _async_generator_wrapper
    if inspect.iscoroutinefunction(func):
        return _coroutine_wrapper
    if inspect.isgeneratorfunction(func):
        return _generator_wrapper
    return _plain_wrapper


#: Read once at import from NPUPROFILE_ENABLED: when False, ``@profiled`` returns functions unchanged.
ENABLED_AT_IMPORT = True


@overload
def profiled(func: F, /) -> F: ...
@overload
def profiled(name: str | None = None, /, *, sync: bool = False) -> Callable[[F], F]: ...
@overload
def profiled(*, name: str | None = None, sync: bool = False) -> Callable[[F], F]: ...


def profiled(func: Any = None, /, name: str | None = None, *, sync: bool = False) -> Any:
    """Time every call of the decorated function as a region.

    Use bare (``@profiled``, the region is named after ``__qualname__``), with a
    name (``@profiled("decode")``) or with keywords (``@profiled(name=..., sync=True)``).
    Works on functions, methods, classmethods, staticmethods, coroutines and
    generators (each resume is one region). With ``NPUPROFILE_ENABLED=0`` at
    import, the function is returned unchanged.
    """
    if isinstance(func, str):
        if name is not None:
            raise RegionError(f"profiled() got the name twice: {func!r} and name={name!r}")
        func, name = None, func
    if name is not None and (name.__class__ is not str or not name):
        raise RegionError(f"profiled name must be a non-empty str, got {name!r}")
    if not isinstance(sync, bool):
        raise RegionError(f"profiled sync must be True or False, got {sync!r}")
    if func is None:
        return lambda target: _decorate(target, name, sync)
    return _decorate(func, name, sync)


def _decorate(func: Any, name: str | None, sync: bool) -> Any:
    if isinstance(func, (classmethod, staticmethod)):
        return type(func)(_decorate(func.__func__, name, sync))
    if not callable(func):
        raise RegionError(f"@profiled can only decorate a callable, got {func!r} of type {type(func).__name__}")
    if not ENABLED_AT_IMPORT:
        return func
    region_name = name or getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)
    wrapper = _wrapper_for(func)(region_name, sync)
    profiled_function = profiled_function_type()(func, wrapper, enabled=ACTIVE.__len__)
    profiled_function._self_region_name = region_name
    return profiled_function


# ``torch.compile(profiled_function)``: run the wrapper eagerly and compile the function it calls.
_compile.skip_frame_of(_plain_wrapper("", False))
