"""Where real traces recorded by others live on this machine (they are never committed).

The first of ``$NPUPROFILE_REAL_TRACES``, ``<repo>/../shared/real-traces`` and
``~/.cache/npuprofile/real-traces`` that exists. Test modules call
:func:`real_traces_root` at import, before the shared fixture clears the
``NPUPROFILE_*`` variables, and skip with :data:`SKIP_REASON` when it is None.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "NPUPROFILE_REAL_TRACES"
REPO = Path(__file__).resolve().parent.parent


def candidates() -> list[Path]:
    """The places looked at, in order."""
    places = [REPO.parent / "shared" / "real-traces", Path.home() / ".cache" / "npuprofile" / "real-traces"]
    if os.environ.get(ENV):
        places.insert(0, Path(os.environ[ENV]))
    return places


def real_traces_root() -> Path | None:
    """The first place that exists, or None."""
    return next((place for place in candidates() if place.is_dir()), None)


SKIP_REASON = (f"no real traces on this machine (looked in {', '.join(str(p) for p in candidates())}; "
               f"set ${ENV} to a folder laid out as its SOURCES.md describes)")
