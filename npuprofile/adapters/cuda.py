"""Deprecated alias of :mod:`npuprofile.backends.cuda` (kept for one release)."""

from __future__ import annotations

import warnings
from typing import Any

from npuprofile.backends import cuda as _moved

warnings.warn(
    "npuprofile.adapters.cuda is deprecated; import from npuprofile.backends.cuda instead",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name: str) -> Any:
    return getattr(_moved, name)
