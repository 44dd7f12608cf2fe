"""Fixtures shared by integration tests (the suite-wide ones are in ``tests/conftest.py``)."""

from __future__ import annotations

from typing import Iterator

import pytest


@pytest.fixture
def fresh_dynamo() -> Iterator[None]:
    """Forget every compiled graph and Dynamo counter before and after the test (compile tests use it)."""
    import torch
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()
