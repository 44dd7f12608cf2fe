"""``profile_module``: each submodule's forward becomes a region named by its module path.

Hooks are registered with ``register_forward_pre_hook`` and
``register_forward_hook(..., always_call=True)``, so a region closes even when
``forward`` raises. While no session is active a hook is one check of a list.
A module called several times in one forward (shared or re-entrant) opens one
region per call; regions nest as the modules nest. Under ``torch.compile`` the
hooks Dynamo traces are replaced by stand-ins (:mod:`npuprofile.core.graph`),
and those it calls as frames of their own run eagerly (``docs/timing.md``).
"""

from __future__ import annotations

import fnmatch
import functools
from typing import Any, Iterable

from npuprofile.core import compile as _compile
from npuprofile.core import graph as _graph
from npuprofile.core.region import ACTIVE, Region, current_region
from npuprofile.errors import ConfigError

__all__ = ["ModuleProfile", "profile_module"]


class _ModuleState:
    """One hooked module: its region name and the regions its calls have open."""

    __slots__ = ("name", "sync", "open")

    def __init__(self, name: str, sync: bool) -> None:
        self.name = name
        self.sync = sync
        self.open: list[Region] = []


def _enter(state: _ModuleState, module: Any, args: Any) -> None:
    if not ACTIVE:
        return
    region = Region(ACTIVE[0], state.name, state.sync)
    region.__enter__()
    state.open.append(region)


def _exit(state: _ModuleState, module: Any, args: Any, output: Any) -> None:
    regions = state.open
    if not regions:
        return
    # The innermost region of this thread, if it is one of ours; else the latest one.
    current = current_region()
    index = len(regions) - 1
    while index >= 0 and regions[index] is not current:
        index -= 1
    region = regions.pop(index if index >= 0 else -1)
    region.__exit__(None, None, None)


@_compile.stand_in(_enter)
def _enter_in_graph(state: _ModuleState, module: Any, args: Any) -> None:
    _graph.graph_push(state.name, args)


@_compile.stand_in(_exit)
def _exit_in_graph(state: _ModuleState, module: Any, args: Any, output: Any) -> None:
    _graph.graph_pop(state.name, output)


# The compiled module's own hooks run as frames of their own, outside its graph:
# Dynamo runs them eagerly, so the root region times each compiled call.
_compile.skip_frame_of(_enter.__code__)
_compile.skip_frame_of(_exit.__code__)


class ModuleProfile:
    """The hooks :func:`profile_module` attached; :meth:`remove` detaches every one.

    Also a context manager: leaving the ``with`` block removes the hooks.
    """

    def __init__(self, model: Any, names: dict[str, str], handles: list[Any]) -> None:
        self.model = model
        #: Module path -> region name, for every hooked module.
        self.names = names
        self._handles = handles

    @property
    def active(self) -> bool:
        """Whether the hooks are still attached."""
        return bool(self._handles)

    def remove(self) -> None:
        """Detach every hook; the model is left exactly as before. Safe to call twice."""
        handles, self._handles = self._handles, []
        for handle in reversed(handles):
            handle.remove()

    def __enter__(self) -> "ModuleProfile":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.remove()

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        state = "attached" if self._handles else "removed"
        return f"<ModuleProfile {type(self.model).__name__} modules={len(self.names)} {state}>"


def _patterns(value: Any, source: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Iterable):
        raise ConfigError(f"{source}={value!r} is not allowed; allowed: a glob pattern, a list of them, or None")
    patterns = tuple(items)
    if not patterns or any(not isinstance(p, str) or not p for p in patterns):
        raise ConfigError(
            f"{source}={value!r} is not allowed; allowed: a non-empty glob pattern (fnmatch, e.g. 'layers.*.attn') "
            "or a non-empty list of them"
        )
    return patterns


def profile_module(
    model: Any,
    depth: int | None = None,
    include: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
    *,
    prefix: str | None = None,
    sync: bool = False,
) -> ModuleProfile:
    """Time each submodule's forward as a region named by its module path (``layers.0.attn``).

    ``model`` is a ``torch.nn.Module``; the root module's region is named
    ``prefix`` (default: its class name) and, when ``prefix`` is given, every
    path starts with it. ``depth`` keeps modules at most that many levels below
    the root (0: the root alone; ``None``: all). ``include``/``exclude`` are glob
    patterns (``fnmatch``, case-sensitive) matched against the path (the root
    matches by its region name); a module is hooked when it matches some
    ``include`` pattern (or none was given) and no ``exclude`` pattern.
    ``sync=True`` makes every module region synchronize the device.

    Returns a :class:`ModuleProfile`; its ``remove()`` (or leaving ``with``)
    detaches every hook. Regions only record while a session is active.
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"profile_module needs a torch.nn.Module, got {type(model).__name__}")
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
        raise ConfigError(f"depth={depth!r} is not allowed; allowed: None or a whole number >= 0")
    if prefix is not None and (not isinstance(prefix, str) or not prefix):
        raise ConfigError(f"prefix={prefix!r} is not allowed; allowed: None or a non-empty str")
    if not isinstance(sync, bool):
        raise ConfigError(f"sync={sync!r} is not allowed; allowed: True or False")
    includes = _patterns(include, "include")
    excludes = _patterns(exclude, "exclude")
    _compile.install()

    root_name = prefix or type(model).__name__
    names: dict[str, str] = {}
    handles: list[Any] = []
    try:
        for path, module in model.named_modules():
            if depth is not None and path and path.count(".") + 1 > depth:
                continue
            name = (f"{prefix}.{path}" if prefix else path) if path else root_name
            subject = path or root_name
            if includes is not None and not any(fnmatch.fnmatchcase(subject, p) for p in includes):
                continue
            if excludes is not None and any(fnmatch.fnmatchcase(subject, p) for p in excludes):
                continue
            state = _ModuleState(name, sync)
            handles.append(module.register_forward_pre_hook(functools.partial(_enter, state)))
            handles.append(module.register_forward_hook(functools.partial(_exit, state), always_call=True))
            names[path] = name
    except BaseException:
        for handle in reversed(handles):
            handle.remove()
        raise
    return ModuleProfile(model, names, handles)
