"""Shared fixtures: every test starts with a fresh registry and no active session."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import settings

from npuprofile.backends import registry as _registry
from npuprofile.core import region as _region
from npuprofile.sessions import lifecycle as _lifecycle

# Property tests check results, never speed: no per-example deadline on these shared, noisy machines.
# CI replays the same examples every run (derandomize), so a red CI run is reproducible and never luck;
# local runs keep exploring new examples and remember failures in .hypothesis/.
settings.register_profile("local", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("NPUPROFILE_HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "local"))


@pytest.fixture(autouse=True)
def clean_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Reset the registry, the active session and NPUPROFILE_* variables around each test."""
    for name in list(os.environ):
        if name.startswith("NPUPROFILE_") and name != "NPUPROFILE_OFFLINE":
            monkeypatch.delenv(name)
    _registry.backends.reset()
    _region.ACTIVE.clear()
    yield
    for session in list(_lifecycle._SESSIONS):
        session.stop()
    _region.ACTIVE.clear()
    _registry.backends.reset()


def load_trace(path: Path) -> dict[str, Any]:
    """Read a Chrome trace (plain or gzip)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return json.load(handle)


def user_annotations(trace: dict[str, Any]) -> list[dict[str, Any]]:
    """The record_function ranges of a trace (npuprofile regions land there)."""
    return [e for e in trace["traceEvents"] if e.get("cat") == "user_annotation" and e.get("ph") == "X"]


@pytest.fixture
def trace_helpers() -> Any:
    """Trace-reading helpers for tests."""
    class Helpers:
        load = staticmethod(load_trace)
        annotations = staticmethod(user_annotations)

    return Helpers
