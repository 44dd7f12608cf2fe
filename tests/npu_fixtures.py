"""Fixtures for the NPU tests: the fake torch_npu on ``sys.path``, and clean npuprofile state.

Test modules import these fixtures by name (``from .npu_fixtures import ...``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch

from npuprofile.backends.registry import backends
from npuprofile.core import region as _region

FAKE_ROOT = Path(__file__).resolve().parent / "fake_torch_npu"


def _forget_torch_npu() -> None:
    for name in [name for name in sys.modules if name == "torch_npu" or name.startswith("torch_npu.")]:
        del sys.modules[name]
    if "torch.npu" in sys.modules:
        del sys.modules["torch.npu"]
    if hasattr(torch, "npu"):
        delattr(torch, "npu")


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fresh registry, no active session and no NPUPROFILE_* variables, before and after the test."""
    for name in list(os.environ):
        if name.startswith("NPUPROFILE_") and name != "NPUPROFILE_OFFLINE":
            monkeypatch.delenv(name)
    backends.reset()
    _region.ACTIVE.clear()
    yield
    _region.ACTIVE.clear()
    backends.reset()


@pytest.fixture
def fake_torch_npu(monkeypatch: pytest.MonkeyPatch, fresh_registry: None) -> Iterator[Any]:
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
def fake_torch_npu_path(monkeypatch: pytest.MonkeyPatch, fresh_registry: None) -> Iterator[Path]:
    """Only put the fake on ``sys.path`` (tests that control how its import goes)."""
    _forget_torch_npu()
    monkeypatch.syspath_prepend(str(FAKE_ROOT))
    yield FAKE_ROOT
    _forget_torch_npu()
    backends.reset()
