"""How regions behave under ``torch.compile``.

Dynamo cannot trace a region (it keeps its stack in a ``contextvars.ContextVar``
and reads a host or device clock), and a graph break per region would change
the very program being measured. So, inside a compiled graph, regions are
no-ops that keep the graph whole (``fullgraph=True`` works), and they do not
vanish silently: the first time Dynamo traces one, its name is logged once and
recorded in :data:`COMPILED_REGIONS`, which every summary reports.

To time compiled code, put the region outside the graph: around the call of
the compiled function, or ``@profiled`` on a function that is then compiled
(the wrapper stays outside the graph and times each compiled call).

Nothing here imports torch or Dynamo: :func:`install` (run at import, at
session start and by ``profile_module``) registers with Dynamo only once
``torch._dynamo`` has been imported by someone else (``torch.compile`` does
that on first use); before that it arms a one-shot import hook that installs
right after ``torch._dynamo`` loads.
The hooks used are ``torch.compiler.substitute_in_graph`` (Dynamo traces a
no-op stand-in instead of a region entry point), ``assume_constant_result``
(the note runs once, at trace time) and a Dynamo skip of the ``@profiled``
wrapper's frame.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import sys
import threading
from typing import Any, Callable

logger = logging.getLogger("npuprofile")

#: Names of regions Dynamo met inside a compiled graph in this process (not timed there).
COMPILED_REGIONS: set[str] = set()

_STAND_INS: list[tuple[Callable[..., Any], Callable[..., Any]]] = []
_SKIPPED: list[Callable[..., Any]] = []
_INSTALLED = False
#: True once :func:`note_compiled` is registered to run at trace time (read by traced stand-ins).
READY = False
_LOCK = threading.Lock()


def note_compiled(name: str) -> bool:
    """Record that region ``name`` was traced into a compiled graph (runs at trace time only)."""
    if name not in COMPILED_REGIONS:
        first = not COMPILED_REGIONS
        COMPILED_REGIONS.add(name)
        log = logger.warning if first else logger.info
        log(
            "npuprofile: region %r is inside a torch.compile graph and is not timed there; "
            "time the compiled call from outside (see docs/timing.md)",
            name,
        )
    return True


def stand_in(original: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare that Dynamo should trace the decorated function instead of ``original``.

    The stand-in must be a no-op with the same calling convention that calls
    :func:`note_compiled` with the region name.
    """

    def declare(replacement: Callable[..., Any]) -> Callable[..., Any]:
        with _LOCK:
            _STAND_INS.append((original, replacement))
            installed = _INSTALLED
        if installed:
            _apply_stand_in(original, replacement)
        return replacement

    return declare


def skip_frame_of(function: Callable[..., Any]) -> None:
    """Declare that Dynamo should run ``function``'s frames eagerly and compile what they call."""
    with _LOCK:
        _SKIPPED.append(function)
        installed = _INSTALLED
    if installed:
        _apply_skip(function)


def install() -> None:
    """Register the stand-ins with Dynamo once it is loaded; until then, wait for its import (cheap)."""
    global _INSTALLED, READY
    if _INSTALLED:
        return
    if "torch._dynamo" not in sys.modules:
        _arm_import_hook()
        return
    with _LOCK:
        if _INSTALLED:
            return
        _INSTALLED = True
        stand_ins = list(_STAND_INS)
        skipped = list(_SKIPPED)
    try:
        import torch._dynamo
    except Exception as exc:  # a torch without Dynamo: nothing can be compiled
        logger.debug("npuprofile: torch._dynamo unavailable (%s); compile support not installed", exc)
        return
    torch._dynamo.assume_constant_result(note_compiled)
    READY = True
    for original, replacement in stand_ins:
        _apply_stand_in(original, replacement)
    for function in skipped:
        _apply_skip(function)


def _apply_stand_in(original: Callable[..., Any], replacement: Callable[..., Any]) -> None:
    try:
        import torch.compiler

        torch.compiler.substitute_in_graph(original, skip_signature_check=True)(replacement)
    except Exception as exc:  # an older torch: regions graph-break there instead
        logger.debug("npuprofile: could not register a compile stand-in for %r: %s", original, exc)


def _apply_skip(function: Callable[..., Any]) -> None:
    try:
        from torch._dynamo.eval_frame import skip_code

        skip_code(function.__code__)
    except Exception as exc:
        logger.debug("npuprofile: could not mark %r to run outside compiled graphs: %s", function, exc)


class _InstallAfterDynamo(importlib.abc.MetaPathFinder):
    """A one-shot import hook: when ``torch._dynamo`` is imported, run :func:`install` right after."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != "torch._dynamo":
            return None
        _disarm_import_hook()
        spec = importlib.util.find_spec(fullname)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run_module = loader.exec_module

        def exec_module(module: Any) -> None:
            run_module(module)
            try:
                install()
            except Exception as exc:  # never break the user's import
                logger.debug("npuprofile: compile support not installed: %s", exc)

        loader.exec_module = exec_module
        return spec


_HOOK = _InstallAfterDynamo()


def _arm_import_hook() -> None:
    with _LOCK:
        if _HOOK not in sys.meta_path:
            sys.meta_path.insert(0, _HOOK)


def _disarm_import_hook() -> None:
    with _LOCK:
        if _HOOK in sys.meta_path:
            sys.meta_path.remove(_HOOK)
