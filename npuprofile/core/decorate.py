"""``@profiled``: time every call of a function as a region.

The decorator returns a real Python function (``functools.update_wrapper``
metadata, ``__wrapped__``), so it binds as a method, pickles by reference and
is traced by ``torch.compile`` like any function. For a plain function the
wrapper is generated with the function's own parameter list and passes its
arguments on by name, not through ``*args, **kwargs``: the interpreter then
runs the call without a C-level call (recursion through a decorated function
uses one extra frame per call and no C stack), and an idle call only checks
:func:`~npuprofile.core.compile.compiling` and one list. Under Dynamo the
wrapper takes the traced branch (:func:`~npuprofile.core.graph.traced_call`)
before it could read session state, so no guard depends on a session. When
the wrapper itself is the function handed to ``torch.compile``, Dynamo runs
its frame eagerly and compiles the function it calls: each compiled call is
timed as one region.

Coroutines, generators and async generators are timed per resume; their
wrappers are coroutine, generator and async generator functions themselves.
"""

from __future__ import annotations

import functools
import itertools
import linecache
import logging
import threading
import types
from typing import Any, Callable, TypeVar, overload

from npuprofile.core import compile as _compile
from npuprofile.core import graph as _graph
from npuprofile.core.region import ACTIVE, Region, _lean_region, profile_region
from npuprofile.errors import RegionError

logger = logging.getLogger("npuprofile")

F = TypeVar("F", bound=Callable[..., Any])

# -- generated wrappers for plain calls ---------------------------------------------------------

_PREFIX = "_npp_"
_TEMPLATE = """\
def _npp_make(_npp_func, _npp_name, _npp_sync):
    def profiled_call({params}):
        if _npp_compiling():
            return _npp_traced(_npp_name, _npp_func, ({args}), {{{kwargs}}})
        if not _npp_active:
            return _npp_func({call})
        _npp_recorder = _npp_active[0]
        if _npp_sync or _npp_recorder.push is not None or _npp_recorder.deferred:
            _npp_timer = _npp_region(_npp_recorder, _npp_name, _npp_sync)
        else:
            _npp_timer = _npp_lean(_npp_recorder, _npp_name)
        with _npp_timer:
            return _npp_func({call})
    return profiled_call
"""
_NAMESPACE: dict[str, Any] = {
    "_npp_compiling": _compile.compiling,
    "_npp_traced": _graph.traced_call,
    "_npp_active": ACTIVE,
    "_npp_region": Region,
    "_npp_lean": _lean_region,
}
_FACTORIES: dict[tuple[str, ...], Callable[[Any, str, bool], Callable[..., Any]]] = {}
_FACTORY_LOCK = threading.Lock()
_FACTORY_IDS = itertools.count()
#: The parameter list of a wrapper that forwards anything (callables that are not plain functions).
_ANY_SPEC = ("*args, **kwargs", "*args, ", "**kwargs", "*args, **kwargs")
_CO_VARARGS, _CO_VARKEYWORDS = 0x04, 0x08  # code flags, as ``inspect`` names them (not imported: it is slow)


def _spec(func: Any) -> tuple[str, str, str, str]:
    """Source pieces of a wrapper taking exactly ``func``'s parameters: (params, args tuple, kwargs dict, call)."""
    if type(func) is not types.FunctionType:
        return _ANY_SPEC
    code = func.__code__
    n_pos, n_kw = code.co_argcount, code.co_kwonlyargcount
    names = code.co_varnames
    positional, keyword = list(names[:n_pos]), list(names[n_pos : n_pos + n_kw])
    rest = iter(names[n_pos + n_kw :])
    star = next(rest) if code.co_flags & _CO_VARARGS else None
    double_star = next(rest) if code.co_flags & _CO_VARKEYWORDS else None
    every = positional + keyword + [n for n in (star, double_star) if n]
    if any(n.startswith(_PREFIX) or not n.isidentifier() for n in every):
        return _ANY_SPEC  # would shadow the wrapper's own names
    first_default = n_pos - len(func.__defaults__ or ())
    kw_defaults = func.__kwdefaults__ or {}
    params = []
    for index, name in enumerate(positional):
        params.append(f"{name}=None" if index >= first_default else name)  # defaults: set from func below
        if index + 1 == code.co_posonlyargcount:
            params.append("/")
    if star:
        params.append(f"*{star}")
    elif keyword:
        params.append("*")
    params += [f"{name}=None" if name in kw_defaults else name for name in keyword]
    if double_star:
        params.append(f"**{double_star}")
    args = "".join(f"{name}, " for name in positional) + (f"*{star}, " if star else "")
    kwargs = "".join(f"{name!r}: {name}, " for name in keyword) + (f"**{double_star}" if double_star else "")
    call = positional + ([f"*{star}"] if star else []) + [f"{n}={n}" for n in keyword]
    call += [f"**{double_star}"] if double_star else []
    return ", ".join(params), args, kwargs, ", ".join(call)


def _factory(spec: tuple[str, ...]) -> Callable[[Any, str, bool], Callable[..., Any]]:
    """The compiled maker of wrappers for one parameter list (made once per distinct list)."""
    factory = _FACTORIES.get(spec)
    if factory is not None:
        return factory
    with _FACTORY_LOCK:
        factory = _FACTORIES.get(spec)
        if factory is None:
            params, args, kwargs, call = spec
            source = _TEMPLATE.format(params=params, args=args, kwargs=kwargs, call=call)
            filename = f"<npuprofile @profiled wrapper {next(_FACTORY_IDS)}>"
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # for tracebacks
            namespace: dict[str, Any] = dict(_NAMESPACE)
            exec(compile(source, filename, "exec"), namespace)
            factory = namespace["_npp_make"]
            # ``torch.compile(profiled_function)``: run the wrapper eagerly, compile what it calls.
            _compile.skip_frame_of(factory(None, "", False).__code__)
            _FACTORIES[spec] = factory
    return factory


def _plain_wrapper(func: Any, name: str, sync: bool) -> Callable[..., Any]:
    wrapper = _factory(_spec(func))(func, name, sync)
    if type(func) is types.FunctionType:
        wrapper.__defaults__ = func.__defaults__
        wrapper.__kwdefaults__ = func.__kwdefaults__
    return wrapper


# -- coroutines and generators: timed per resume --------------------------------------------------


def _coroutine_wrapper(func: Any, name: str, sync: bool) -> Callable[..., Any]:
    async def profiled_coroutine(*args: Any, **kwargs: Any) -> Any:
        with profile_region(name, sync=sync):
            return await func(*args, **kwargs)

    return profiled_coroutine


def _generator_wrapper(func: Any, name: str, sync: bool) -> Callable[..., Any]:
    def profiled_generator(*args: Any, **kwargs: Any) -> Any:
        generator = func(*args, **kwargs)
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

    return profiled_generator


def _async_generator_wrapper(func: Any, name: str, sync: bool) -> Callable[..., Any]:
    async def profiled_async_generator(*args: Any, **kwargs: Any) -> Any:
        generator = func(*args, **kwargs)
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

    return profiled_async_generator


def _wrapper_for(func: Callable[..., Any]) -> Callable[[Any, str, bool], Callable[..., Any]]:
    import inspect

    if inspect.isasyncgenfunction(func):
        return _async_generator_wrapper
    if inspect.iscoroutinefunction(func):
        return _coroutine_wrapper
    if inspect.isgeneratorfunction(func):
        return _generator_wrapper
    return _plain_wrapper


def _copy_metadata(wrapper: Callable[..., Any], func: Any) -> None:
    """``functools.update_wrapper``, keeping Dynamo's own markers of ``func`` off the wrapper.

    Those markers (``_torchdynamo_inline`` on a ``torch.compile`` result) would
    make Dynamo trace ``func`` in place of the wrapper and drop the region.
    Only a plain function's ``__dict__`` is copied (a module's would carry its state).
    """
    functools.update_wrapper(wrapper, func, updated=())
    if type(func) is types.FunctionType:
        wrapper.__dict__.update((k, v) for k, v in func.__dict__.items() if not k.startswith("_torchdynamo"))
        wrapper.__wrapped__ = func  # type: ignore[attr-defined]  # not the one copied from func


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
    generators (each resume is one region), and under ``torch.compile`` (see
    ``docs/timing.md``). With ``NPUPROFILE_ENABLED=0`` at import, the function
    is returned unchanged.
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
    wrapper = _wrapper_for(func)(func, region_name, sync)
    _copy_metadata(wrapper, func)
    return wrapper
