"""Regions under torch.compile: the compile never breaks, regions in the graph are noted, outside ones are timed.

Uses the "eager" and "aot_eager" Dynamo backends (fast on CPU); one inductor case is marked slow.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Iterator

import pytest
import torch

import npuprofile as npp
from npuprofile.backends import registry as _registry
from npuprofile.core import compile as _compile
from npuprofile.core import region as _region


@pytest.fixture(autouse=True)
def clean_state() -> Iterator[None]:
    _registry.backends.reset()
    _region.ACTIVE.clear()
    _compile.COMPILED_REGIONS.clear()
    torch._dynamo.reset()
    yield
    _region.ACTIVE.clear()
    _compile.COMPILED_REGIONS.clear()
    torch._dynamo.reset()
    _registry.backends.reset()


@npp.profiled("scale")
def scale(x: torch.Tensor) -> torch.Tensor:
    return x * 2


def body(x: torch.Tensor) -> torch.Tensor:
    with npp.profile_region("inner"):
        y = x.sin()
    return scale(y).cos()


def reference(x: torch.Tensor) -> torch.Tensor:
    return (x.sin() * 2).cos()


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
@pytest.mark.parametrize("fullgraph", [True, False])
def test_regions_inside_the_graph_are_noted_not_timed_and_keep_one_graph(backend: str, fullgraph: bool) -> None:
    compiled = torch.compile(body, backend=backend, fullgraph=fullgraph)
    x = torch.randn(16)
    with npp.session(trace=False) as s:
        for _ in range(3):
            with npp.profile_region("call"):
                out = compiled(x)
    assert torch.allclose(out, reference(x))
    summary = s.summary()
    assert summary.region("call").count == 3  # the region around the compiled call is timed
    assert "inner" not in summary and "scale" not in summary
    assert summary.metadata["compiled_regions"] == ["inner", "scale"]
    assert "inside torch.compile graphs, not timed: inner, scale" in str(summary)
    explained = torch._dynamo.explain(body)(x)
    assert explained.graph_break_count == 0 and explained.graph_count == 1


def test_function_compiled_before_the_session_is_noted_once_the_session_runs() -> None:
    compiled = torch.compile(body, backend="eager", fullgraph=True)
    x = torch.randn(4)
    compiled(x)
    with npp.session(trace=False) as s:
        assert torch.allclose(compiled(x), reference(x))
    assert set(s.summary().metadata["compiled_regions"]) == {"inner", "scale"}


def test_compiling_a_profiled_function_times_each_compiled_call() -> None:
    @npp.profiled("whole")
    def whole(x: torch.Tensor) -> torch.Tensor:
        with npp.profile_region("whole_inner"):
            return x.sin() + 1

    compiled = torch.compile(whole, backend="eager", fullgraph=True)
    x = torch.randn(8)
    with npp.session(trace=False) as s:
        for _ in range(4):
            assert torch.allclose(compiled(x), x.sin() + 1)
    summary = s.summary()
    assert summary.region("whole").count == 4
    assert summary.metadata["compiled_regions"] == ["whole_inner"]


def test_profiled_around_a_compiled_function_is_timed() -> None:
    timed = npp.profiled(torch.compile(reference, backend="eager", fullgraph=True), "compiled_ref")
    with npp.session(trace=False) as s:
        for _ in range(2):
            timed(torch.randn(4))
    assert s.summary().region("compiled_ref").count == 2


def test_compiled_model_with_profile_module_hooks_compiles_fullgraph() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU())
    x = torch.randn(2, 4)
    expected = model(x)
    with npp.profile_module(model):
        compiled = torch.compile(model, backend="eager", fullgraph=True)
        with npp.session(trace=False) as s:
            with npp.profile_region("forward"):
                out = compiled(x)
    assert torch.equal(out, expected)
    summary = s.summary()
    assert summary.region("forward").count == 1
    assert set(summary.metadata["compiled_regions"]) == {"Sequential", "0", "1"}


def test_idle_regions_compile_fullgraph_even_before_any_session_or_install() -> None:
    # A fresh process that imports npuprofile before torch, so no stand-in is registered yet.
    code = (
        "import npuprofile as npp\n"
        "import torch\n"
        "from npuprofile import _compile\n"
        "assert not _compile.READY\n"
        "def f(x):\n"
        "    with npp.profile_region('r'):\n"
        "        return x + 1\n"
        "print(torch.compile(f, backend='eager', fullgraph=True)(torch.zeros(2)).tolist())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[1.0, 1.0]"


@pytest.mark.slow
def test_inductor_fullgraph() -> None:
    compiled = torch.compile(body, backend="inductor", fullgraph=True)
    x = torch.randn(16)
    with npp.session(trace=False) as s:
        out = compiled(x)
    assert torch.allclose(out, reference(x), atol=1e-6)
    assert s.summary().metadata["compiled_regions"] == ["inner", "scale"]
