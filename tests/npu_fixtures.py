"""Fixtures for the NPU tests: the fake torch_npu on ``sys.path``.

Test modules import these fixtures by name (``from tests.npu_fixtures import ...``); the autouse
``clean_state`` fixture of tests/conftest.py resets the registry around every test.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch

from npuprofile.backends.registry import backends

FAKE_ROOT = Path(__file__).resolve().parent / "fake_torch_npu"


def _forget_torch_npu() -> None:
    for name in [name for name in sys.modules if name == "torch_npu" or name.startswith("torch_npu.")]:
        del sys.modules[name]
    if "torch.npu" in sys.modules:
        del sys.modules["torch.npu"]
    if hasattr(torch, "npu"):
        delattr(torch, "npu")


@pytest.fixture
def fake_torch_npu(monkeypatch: pytest.MonkeyPatch, clean_state: None) -> Iterator[Any]:
    """Put tests/fake_torch_npu on ``sys.path``, import it, and undo everything afterwards."""
    monkeypatch.delenv("FAKE_TORCH_NPU_IMPORT_ERROR", raising=False)
    _forget_torch_npu()
    monkeypatch.syspath_prepend(str(FAKE_ROOT))
    import torch_npu

    torch_npu._fake.reset()
    torch_npu._fake.device_count = 1
    backends.reset()
    yield torch_npu
    _forget_torch_npu()
    backends.reset()


@pytest.fixture
def fake_torch_npu_path(monkeypatch: pytest.MonkeyPatch, clean_state: None) -> Iterator[Path]:
    """Only put the fake on ``sys.path`` (tests that control how its import goes)."""
    _forget_torch_npu()
    monkeypatch.syspath_prepend(str(FAKE_ROOT))
    yield FAKE_ROOT
    _forget_torch_npu()
    backends.reset()
