"""``@profiled``: time every call of a function as a region (wrapt wrappers, correct on methods too).

The wrapper checks one list's length when idle; with a session active it opens
a region around the call. Coroutines, generators and async generators are timed
per resume.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, TypeVar, overload

from npuprofile.core import compile as _compile
from npuprofile.core.region import ACTIVE, Region, _lean_region, profile_region
from npuprofile.errors import RegionError

logger = logging.getLogger("npuprofile")

F = TypeVar("F", bound=Callable[..., Any])


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
