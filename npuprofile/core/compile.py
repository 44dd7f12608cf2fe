"""Hooks into ``torch.compile`` (Dynamo): what it traces instead of our code, and what it leaves eager.

Dynamo cannot trace a region (it reads a clock and keeps its stack in a
``contextvars.ContextVar``), and a graph break per region would change the
very program being measured. So the entry points of regions tell Dynamo what
to trace in their place:

- :func:`compiling` returns False when run and True when traced: code that
  branches on it first takes a path Dynamo can trace without ever reading
  session state, so no guard (and no recompilation) depends on a session;
- :func:`stand_in` makes Dynamo trace a replacement instead of a function
  (``torch.compiler.substitute_in_graph``);
- :func:`skip_frame_of` makes Dynamo run a function's own frame eagerly and
  compile what it calls (the ``@profiled`` wrapper of a compiled function);
- :func:`constant_at_trace` marks a function whose result Dynamo takes as a
  constant (``assume_constant_result``): it runs once per trace, never per call;
- :func:`when_installed` runs a setup step once Dynamo is there (defining the
  range operators of :mod:`npuprofile.core.graph`).

Nothing here imports torch or Dynamo: :func:`install` (run at import, at
session start and by ``profile_module``) registers with Dynamo only once
``torch._dynamo`` has been imported by someone else (``torch.compile`` does
that on first use); before that it arms a one-shot import hook that installs
right after ``torch._dynamo`` loads, so every registration is in place before
the first trace.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import sys
import threading
import types
from typing import Any, Callable

logger = logging.getLogger("npuprofile")

_STAND_INS: list[tuple[Callable[..., Any], Callable[..., Any]]] = []
_SKIPPED: list[types.CodeType] = []
_CONSTANTS: list[Callable[..., Any]] = []
_SETUPS: list[Callable[[], None]] = []
_INSTALLED = False
#: True once the registrations are in place in Dynamo.
READY = False
_LOCK = threading.Lock()


def compiling() -> bool:
    """False when run; True when Dynamo traces the call (a stand-in), so callers branch without guards."""
    return False


def stand_in(original: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare that Dynamo should trace the decorated function instead of ``original``.

    The stand-in takes the same arguments and must be traceable: no clocks, no
    context variables, no session state.
    """

    def declare(replacement: Callable[..., Any]) -> Callable[..., Any]:
        with _LOCK:
            _STAND_INS.append((original, replacement))
            installed = READY
        if installed:
            _apply_stand_in(original, replacement)
        return replacement

    return declare


def skip_frame_of(code: types.CodeType) -> None:
    """Declare that Dynamo should run frames of ``code`` eagerly and compile what they call."""
    with _LOCK:
        _SKIPPED.append(code)
        installed = READY
    if installed:
        _apply_skip(code)


def constant_at_trace(function: Callable[..., Any]) -> Callable[..., Any]:
    """Declare that Dynamo runs ``function`` while tracing and takes its result as a constant."""
    with _LOCK:
        _CONSTANTS.append(function)
        installed = READY
    if installed:
        _apply_constant(function)
    return function


def when_installed(setup: Callable[[], None]) -> None:
    """Run ``setup`` once Dynamo is loaded (at once if it already is); a failure is logged, never raised."""
    with _LOCK:
        _SETUPS.append(setup)
        installed = READY
    if installed:
        _run_setup(setup)


def _compiling_in_graph() -> bool:
    return True


stand_in(compiling)(_compiling_in_graph)


def install() -> None:
    """Register everything with Dynamo once it is loaded; until then, wait for its import (cheap)."""
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
    try:
        import torch._dynamo  # noqa: F401 - loaded already; makes sure it finished loading
    except Exception as exc:  # a torch without Dynamo: nothing can be compiled
        logger.debug("npuprofile: torch._dynamo unavailable (%s); compile support not installed", exc)
        return
    with _LOCK:
        READY = True
        stand_ins, skipped = list(_STAND_INS), list(_SKIPPED)
        constants, setups = list(_CONSTANTS), list(_SETUPS)
    for function in constants:
        _apply_constant(function)
    for original, replacement in stand_ins:
        _apply_stand_in(original, replacement)
    for code in skipped:
        _apply_skip(code)
    for setup in setups:
        _run_setup(setup)


def _apply_constant(function: Callable[..., Any]) -> None:
    try:
        import torch._dynamo

        mark_constant: Any = torch._dynamo.assume_constant_result
        mark_constant(function)
    except Exception as exc:
        logger.debug("npuprofile: could not mark %r as constant under compile: %s", function, exc)


def _apply_stand_in(original: Callable[..., Any], replacement: Callable[..., Any]) -> None:
    try:
        import torch.compiler

        torch.compiler.substitute_in_graph(original, skip_signature_check=True)(replacement)
    except Exception as exc:  # an older torch: regions graph-break there instead
        logger.debug("npuprofile: could not register a compile stand-in for %r: %s", original, exc)


def _apply_skip(code: types.CodeType) -> None:
    try:
        from torch._dynamo.eval_frame import skip_code

        skip_code(code)
    except Exception as exc:
        logger.debug("npuprofile: could not mark %s to run outside compiled graphs: %s", code.co_name, exc)


def _run_setup(setup: Callable[[], None]) -> None:
    try:
        setup()
    except Exception as exc:
        logger.debug("npuprofile: compile setup %s failed: %s", getattr(setup, "__name__", setup), exc)


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
