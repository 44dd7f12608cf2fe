"""Deprecated: the backends moved to :mod:`npuprofile.backends` (this alias goes in the next release)."""

from __future__ import annotations

import warnings

warnings.warn(
    "npuprofile.adapters is deprecated; import from npuprofile.backends instead",
    DeprecationWarning,
    stacklevel=2,
)
