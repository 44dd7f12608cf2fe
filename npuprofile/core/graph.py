"""Regions inside compiled graphs: noted per trace, seen by the sessions their code runs in, optionally timed.

What Dynamo traces in place of a region (``@profiled``, ``profile_region``,
``profile_module`` hooks; see :mod:`npuprofile.core.compile`) calls
:func:`graph_push` and :func:`graph_pop` here. Three things happen:

1. **At trace time** the region's name is noted in a :class:`Trace`, one per
   frame Dynamo compiles, with where it was seen (the compiled function's
   name, file and line). This runs once per compile, never per call.
2. **Each time the compiled code runs**, it sets one attribute on a flag
   object (a side effect Dynamo replays after the graph, not an operation in
   it: a single attribute store per compiled call). A session clears the flags
   when it starts and reads them when it stops, so it reports exactly the
   regions of the compiled code that ran while it recorded: nothing from an
   earlier session, from a compile it never ran, or from another model. None
   of this reads session state while tracing, so no guard depends on it.
3. **When range operators are wanted** (a session with ``compiled_ranges=True``
   was active during the trace, or ``NPUPROFILE_COMPILED_RANGES`` was set), the
   region becomes two operators in the graph, ``npuprofile::range_push`` and
   ``npuprofile::range_pop``, registered with an ordered effect so the
   compiler keeps them in program order. ``range_push`` takes the region's
   input tensors and ``range_pop`` its outputs, so the kernels producing the
   outputs cannot move past the pop. At run time they open and close a real
   region of the active session, if it asked for compiled ranges: timed like
   any region (host clock or device events) and labelled in the trace, around
   the kernels the compiler emitted for that code.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from typing import Any

from npuprofile.core import compile as _compile

logger = logging.getLogger("npuprofile")

#: The environment variable that puts range operators into graphs traced while no session asks either way.
RANGES_ENV = "NPUPROFILE_COMPILED_RANGES"


class _Flags:
    """One attribute per trace token, set by compiled code each time it runs."""


_RAN = _Flags()


class Trace:
    """The regions Dynamo met while compiling one frame: its token, where it is, whether it has range operators."""

    __slots__ = ("token", "where", "ranges", "names")

    def __init__(self, token: str, where: str, ranges: bool) -> None:
        self.token = token
        self.where = where
        self.ranges = ranges
        self.names: set[str] = set()


_TRACES: dict[str, Trace] = {}
_TOKENS = itertools.count(1)
_NOTED: set[str] = set()
_SESSION: SessionRegions | None = None
_PUSH: Any = None
_POP: Any = None
_LIBRARY: Any = None
_CLOSED = 2  # Region.state of a closed region
_UNAVAILABLE = "torch._dynamo was not loaded yet"


def _ranges_from_env() -> bool:
    word = os.environ.get(RANGES_ENV, "").strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word not in ("", "0", "false", "no", "off"):
        logger.warning("npuprofile: %s=%r is not a boolean; compiled ranges stay off", RANGES_ENV, word)
    return False


def _ranges_wanted() -> bool:
    session = _SESSION
    wanted = session.ranges if session is not None else _ranges_from_env()
    if wanted and _PUSH is None:
        logger.warning("npuprofile: compiled ranges are not available (%s); regions inside graphs are only listed",
                       _UNAVAILABLE)
        return False
    return wanted


def _where() -> str:
    try:
        from torch._dynamo.symbolic_convert import InstructionTranslator

        code = InstructionTranslator.current_tx().f_code
    except Exception:
        return "a compiled graph"
    name = getattr(code, "co_qualname", code.co_name)
    return f"{name} ({os.path.basename(code.co_filename)}:{code.co_firstlineno})"


def _trace_now() -> Trace:
    """The :class:`Trace` of the frame Dynamo is compiling now (made on first use)."""
    context: Any = None
    try:
        import torch._guards

        context = torch._guards.TracingContext.try_get()
    except Exception:
        pass
    trace: Trace | None = getattr(context, "_npuprofile_trace", None)
    if trace is None:
        trace = Trace(f"t{next(_TOKENS)}", _where(), _ranges_wanted())
        _TRACES[trace.token] = trace
        if context is not None:
            context._npuprofile_trace = trace
    return trace


@_compile.constant_at_trace
def note_compiled(name: str) -> str:
    """Note region ``name`` in the trace being compiled; returns that trace's token (runs at trace time only)."""
    trace = _trace_now()
    if name not in trace.names:
        trace.names.add(name)
        if trace.ranges:
            logger.debug("npuprofile: region %r is inside a compiled graph, kept there as range operators", name)
        elif name not in _NOTED:
            log = logger.info if _NOTED else logger.warning
            log(
                "npuprofile: region %r is inside a torch.compile graph and is not timed there; time the "
                "compiled call from outside or use compiled_ranges=True (see docs/timing.md)",
                name,
            )
        _NOTED.add(name)
    return trace.token


@_compile.constant_at_trace
def ranges_in_trace() -> bool:
    """Whether the trace being compiled gets range operators (runs at trace time only)."""
    return _trace_now().ranges


def _tensors(value: Any) -> list[Any]:
    import torch
    import torch.utils._pytree as pytree

    return [leaf for leaf in pytree.tree_leaves(value) if isinstance(leaf, torch.Tensor)]


def graph_push(name: str, inputs: Any = ()) -> None:
    """Traced only: note the region, mark the trace as run, and open a range on ``inputs``' tensors if wanted."""
    token = note_compiled(name)
    setattr(_RAN, token, True)
    if ranges_in_trace():
        _PUSH(name, _tensors(inputs))


def graph_pop(name: str, outputs: Any = ()) -> None:
    """Traced only: close the range of :func:`graph_push` after the kernels producing ``outputs``."""
    if ranges_in_trace():
        _POP(name, _tensors(outputs))


def traced_call(name: str, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """What a ``@profiled`` call is under Dynamo: the call between :func:`graph_push` and :func:`graph_pop`."""
    graph_push(name, (args, kwargs))
    result = func(*args, **kwargs)
    graph_pop(name, result)
    return result


class GraphRange:
    """What ``profile_region`` returns under Dynamo: a context manager traced into the two operators."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> GraphRange:
        graph_push(self.name)
        return self

    def __exit__(self, *exc: Any) -> None:
        graph_pop(self.name)


class SessionRegions:
    """What one session learns about regions inside compiled graphs (one session records at a time).

    :meth:`start` clears the run flags, :meth:`stop` keeps the tokens set
    meanwhile; :meth:`not_timed` maps each region of the compiled code that ran
    to where it was seen, leaving out those its range operators timed.
    """

    def __init__(self, ranges: bool) -> None:
        self.ranges = ranges
        self._ran: set[str] | None = None
        self._local = threading.local()

    def start(self) -> None:
        """Begin: forget which compiled code ran before, become the session range operators record into."""
        global _SESSION
        _RAN.__dict__.clear()
        _SESSION = self

    def stop(self) -> None:
        """End: keep which compiled code ran meanwhile; range operators record nothing more here."""
        global _SESSION
        if _SESSION is self:
            _SESSION = None
        self._ran = set(_RAN.__dict__.copy())

    def not_timed(self) -> dict[str, list[str]]:
        """Region name -> where it was seen, for regions inside compiled graphs that ran and were not timed."""
        tokens = self._ran if self._ran is not None else set(_RAN.__dict__.copy())
        seen: dict[str, set[str]] = {}
        for token in tokens:
            trace = _TRACES.get(token)
            if trace is None or (trace.ranges and self.ranges):
                continue
            for name in trace.names:
                seen.setdefault(name, set()).add(trace.where)
        return {name: sorted(seen[name]) for name in sorted(seen)}

    def _stack(self) -> list[Any]:
        stack: list[Any] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack


def _define_ops() -> None:
    """Define the two range operators (once Dynamo is loaded; skipped on a torch without effects)."""
    global _PUSH, _POP, _LIBRARY, _UNAVAILABLE
    _UNAVAILABLE = "their definition failed (see the debug log)"
    import torch
    from torch._library.effects import EffectType

    from npuprofile.core.region import ACTIVE, profile_region

    def push(name: str, before: list[Any]) -> None:
        session = _SESSION
        if session is not None and session.ranges and ACTIVE:
            stack = session._stack()
            while stack and stack[-1].state == _CLOSED:  # a failed graph's range, closed with its parent
                stack.pop()
            region = profile_region(name)
            region.__enter__()
            stack.append(region)

    def pop(name: str, after: list[Any]) -> None:
        session = _SESSION
        if session is None:
            return
        stack = session._stack()
        index = len(stack) - 1
        while index >= 0 and (stack[index].name != name or stack[index].state == _CLOSED):
            index -= 1
        if index >= 0:
            region = stack[index]
            del stack[index:]
            region.__exit__(None, None, None)  # also closes ranges left open above it, if a pop went missing

    def nothing(name: str, tensors: list[Any]) -> None:
        return None

    make_library: Any = torch.library.Library  # untyped in torch
    library = make_library("npuprofile", "FRAGMENT")
    for op, impl in (("range_push", push), ("range_pop", pop)):
        library.define(f"{op}(str name, Tensor[] tensors) -> ()")
        library.impl(op, impl, "CompositeExplicitAutograd")
        library.impl(op, nothing, "Meta")
        library._register_effectful_op(f"npuprofile::{op}", EffectType.ORDERED)
    _LIBRARY = library
    _PUSH = torch.ops.npuprofile.range_push.default
    _POP = torch.ops.npuprofile.range_pop.default


_compile.when_installed(_define_ops)
