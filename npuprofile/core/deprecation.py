"""Names kept for one release after a rename: a module ``__getattr__`` that warns, then serves the new object."""

from __future__ import annotations

import warnings
from typing import Any, Callable, Mapping

__all__ = ["renamed"]


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
