"""docs/api.md is generated from the public API's docstrings and must not go stale."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import npuprofile as npp

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _generator():
    spec = importlib.util.spec_from_file_location("make_api", DOCS / "make_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_reference_is_up_to_date() -> None:
    expected = _generator().render()
    actual = (DOCS / "api.md").read_text(encoding="utf-8")
    assert actual == expected, "docs/api.md is stale: run `python docs/make_api.py`"


def test_every_public_name_is_documented() -> None:
    text = _generator().render()
    missing = [name for name in npp.__all__ if not name.startswith("__") and f"`{name}" not in text]
    assert missing == []
    assert "(undocumented)" not in text, "a public name or member lacks a docstring"
