"""Where the real traces recorded by others live on this machine.

The first of ``$NPUPROFILE_REAL_TRACES``, ``<repo>/../shared/real-traces``,
``~/.cache/npuprofile/real-traces`` and the small sets committed under
``tests/data/real/traces`` that holds the set a test asks for, laid out as
``tests/data/real/SOURCES.md`` lists (the larger sets are not committed). Tests
that need them call :func:`real_traces_or_skip`.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data" / "real"
#: The small trace sets committed with the tests (so that every run reads some real traces).
VENDORED = DATA / "traces"
ENV = "NPUPROFILE_REAL_TRACES"
# Read once at import: the test fixtures clear NPUPROFILE_* variables around each test.
_FROM_ENV = os.environ.get(ENV)


def candidates() -> list[Path]:
    """Where to look, in order."""
    places = [REPO.parent / "shared" / "real-traces", Path.home() / ".cache" / "npuprofile" / "real-traces", VENDORED]
    chosen = os.environ.get(ENV) or _FROM_ENV
    if chosen:
        places.insert(0, Path(chosen))
    return places


def _is_root(place: Path) -> bool:
    return (place / "cuda").is_dir() or (place / "rocm").is_dir() or (place / "ascend").is_dir()


def real_traces() -> Path | None:
    """The folder of real traces, or None when none of the places has one."""
    for place in candidates():
        if _is_root(place):
            return place
    return None


def real_traces_or_skip(subfolder: str = "") -> Path:
    """The folder (or a subfolder of it); skips the test with the places looked at when absent."""
    import pytest

    target = next((place / subfolder for place in candidates() if _is_root(place) and (place / subfolder).exists()),
                  None)
    if target is None:
        looked = ", ".join(str(p / subfolder) for p in candidates())
        pytest.skip(f"real traces not on this machine (looked in {looked}; set ${ENV} to a copy laid out as "
                    "tests/data/real/SOURCES.md lists)")
    return target


def real_traces_root() -> Path | None:
    """The folder of real traces, or None (for modules that decide at import whether to skip)."""
    return real_traces()


SKIP_REASON = (f"no real traces on this machine (looked in {', '.join(str(p) for p in candidates())}; "
               f"set ${ENV} to a folder laid out as tests/data/real/SOURCES.md lists)")
