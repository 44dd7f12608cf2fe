"""Deprecated alias of :mod:`npuprofile.backends.cpu` (kept for one release)."""

from __future__ import annotations

import warnings
from typing import Any

from npuprofile.backends import cpu as _moved

warnings.warn(
    "npuprofile.adapters.cpu is deprecated; import from npuprofile.backends.cpu instead",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name: str) -> Any:
    return getattr(_moved, name)
