"""Names kept for one release after a rename or a move: module ``__getattr__`` functions that warn, then serve the new object."""

from __future__ import annotations

import warnings
from types import ModuleType
from typing import Any, Callable, Mapping

__all__ = ["moved_module", "renamed"]


def renamed(module: str, names: Mapping[str, tuple[str, Any]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving each old name of ``names`` (``old: (new name, object)``).

    Each use warns ``<module>.<old> is deprecated; use <new name>`` with a
    ``DeprecationWarning`` (nothing is cached, so every use warns); other
    names raise ``AttributeError`` as usual.
    """

    def __getattr__(name: str) -> Any:
        if name in names:
            new, value = names[name]
            warnings.warn(f"{module}.{name} is deprecated; use {new}", DeprecationWarning, stacklevel=2)
            return value
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__


def moved_module(old: str, new: ModuleType) -> Callable[[str], Any]:
    """For module ``old`` kept as an alias of ``new``: warn (at its import), return its ``__getattr__``.

    Call it once from the alias module's body: ``__getattr__ = moved_module(__name__, new)``.
    """
    warnings.warn(f"{old} is deprecated; import from {new.__name__} instead", DeprecationWarning, stacklevel=3)

    def __getattr__(name: str) -> Any:
        return getattr(new, name)

    return __getattr__
