"""Deprecated alias of :mod:`npuprofile.backends.npu` (kept for one release)."""

from __future__ import annotations

import warnings
from typing import Any

from npuprofile.backends import npu as _moved

warnings.warn(
    "npuprofile.adapters.npu is deprecated; import from npuprofile.backends.npu instead",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name: str) -> Any:
    return getattr(_moved, name)
