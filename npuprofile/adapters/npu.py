"""Deprecated alias of :mod:`npuprofile.backends.npu` (kept for one release)."""

from __future__ import annotations

from npuprofile.backends import npu as _moved
from npuprofile.core.deprecation import moved_module

__getattr__ = moved_module(__name__, _moved)
