"""Deprecated alias of :mod:`npuprofile.backends.base` (kept for one release)."""

from __future__ import annotations

import warnings
from typing import Any

from npuprofile.backends import base as _moved

warnings.warn(
    "npuprofile.adapters.base is deprecated; import from npuprofile.backends.base instead",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name: str) -> Any:
    return getattr(_moved, name)
