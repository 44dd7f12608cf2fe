"""Shared fixtures: every test starts with a fresh registry and no active session."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from npuprofile.backends import registry as _registry
from npuprofile.core import region as _region
from npuprofile.sessions import lifecycle as _lifecycle


@pytest.fixture(autouse=True)
def clean_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Reset the registry, the active session and NPUPROFILE_* variables around each test."""
    import os

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
