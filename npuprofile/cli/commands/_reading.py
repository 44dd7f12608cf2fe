"""Reading inputs in the analysis commands (``summarize``, ``report``, ``merge``, ``compare``): whatever a
file holds, a failure ends in one line naming it and the limit it hit.

The readers bound what they keep themselves (see :mod:`npuprofile.analysis.events`);
this is the last line for what only the interpreter notices: running out of
memory, or a saved summary nested deeper than Python's recursion limit.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

from npuprofile.analysis.events import TraceLimitError


@contextlib.contextmanager
def reading(*sources: str) -> Iterator[None]:
    """Turn ``MemoryError`` and ``RecursionError`` while reading ``sources`` into a one-line :class:`TraceLimitError`."""
    names = ", ".join(sources)
    try:
        yield
    except MemoryError:
        raise TraceLimitError(f"{names}: out of memory while reading (limit: the memory of this machine)") from None
    except RecursionError:
        raise TraceLimitError(f"{names}: nested too deeply to read (limit: {sys.getrecursionlimit()} levels, "
                              "Python's recursion limit)") from None
