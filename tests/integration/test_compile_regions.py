"""Regions under torch.compile: what each session reports, timing of compiled calls, compile-time hooks.

The full matrix of region kinds and compile settings is in test_compile_matrix.py;
in-graph range operators are in test_compile_ranges.py.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import torch
from torch._dynamo.utils import counters

import npuprofile as npp
from tests.fakes import ManualEventClock, register_clock

pytestmark = pytest.mark.usefixtures("fresh_dynamo")  # no graph or counter of another test


@npp.profiled("scale")
def scale(x: torch.Tensor) -> torch.Tensor:
    return x * 2


def body(x: torch.Tensor) -> torch.Tensor:
    with npp.profile_region("inner"):
        y = x.sin()
    return scale(y).cos()


def other(x: torch.Tensor) -> torch.Tensor:
    with npp.profile_region("other_inner"):
        return x + 1


def where_of(function: Any) -> str:
    code = function.__code__
    return f"{code.co_qualname} (test_compile_regions.py:{code.co_firstlineno})"


def test_each_session_lists_the_compiled_regions_that_ran_in_it_and_where() -> None:
    first = torch.compile(body, backend="eager", fullgraph=True)
    second = torch.compile(other, backend="eager", fullgraph=True)
    x = torch.randn(8)
    first(x), second(x)  # both compiled, before any session
    with npp.session(trace=False) as only_first:
        assert torch.allclose(first(x), (x.sin() * 2).cos())
    with npp.session(trace=False) as only_second:
        second(x)
    first(x)  # runs between sessions: reported by none of them
    with npp.session(trace=False) as neither:
        pass
    assert only_first.summary().metadata["compiled_regions"] == ["inner", "scale"]
    assert only_first.summary().metadata["compiled_regions_where"] == {
        "inner": [where_of(body)], "scale": [where_of(body)],
    }
    assert only_second.summary().metadata["compiled_regions_where"] == {"other_inner": [where_of(other)]}
    assert neither.summary().metadata["compiled_regions"] == []
    text = str(only_first.summary())
    assert "inside torch.compile graphs, not timed: inner, scale (in body (test_compile_regions.py:" in text
    assert not counters["graph_break"]


def test_a_region_seen_in_two_compiled_functions_lists_both() -> None:
    def caller(x: torch.Tensor) -> torch.Tensor:
        return scale(x) + 1

    compiled_body = torch.compile(body, backend="eager", fullgraph=True)
    compiled_caller = torch.compile(caller, backend="eager", fullgraph=True)
    with npp.session(trace=False) as s:
        compiled_body(torch.randn(4))
        compiled_caller(torch.randn(4))
    assert s.summary().metadata["compiled_regions_where"]["scale"] == sorted([where_of(body), where_of(caller)])


def test_a_later_compile_of_other_code_does_not_bring_earlier_regions_back() -> None:
    with npp.session(trace=False) as s1:
        torch.compile(body, backend="eager")(torch.randn(4))
    torch._dynamo.reset()
    with npp.session(trace=False) as s2:
        torch.compile(other, backend="eager")(torch.randn(4))
    assert s1.summary().metadata["compiled_regions"] == ["inner", "scale"]
    assert s2.summary().metadata["compiled_regions"] == ["other_inner"]


def test_stopped_session_keeps_its_list_when_compiled_code_runs_later() -> None:
    compiled = torch.compile(body, backend="eager", fullgraph=True)
    with npp.session(trace=False) as s:
        pass
    compiled(torch.randn(4))  # after the stop: not this session's
    assert s.summary().metadata["compiled_regions"] == []


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


def test_dynamo_markers_of_a_compiled_function_stay_off_the_wrapper() -> None:
    def double(x: torch.Tensor) -> torch.Tensor:
        return x * 2

    compiled = torch.compile(double, backend="eager")
    assert hasattr(compiled, "_torchdynamo_inline")
    timed = npp.profiled("double")(compiled)
    assert not any(key.startswith("_torchdynamo") for key in vars(timed))
    assert timed.__wrapped__ is compiled
    with npp.session(trace=False) as s:
        assert torch.equal(timed(torch.ones(2)), torch.full((2,), 2.0))
    assert s.summary().region("double").count == 1


class Decorated(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)

    @npp.profiled
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return scale(self.linear(x))


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_compiled_module_whose_own_forward_is_profiled_is_timed_per_call(backend: str) -> None:
    torch.manual_seed(0)
    model, reference = Decorated(), Decorated()
    reference.load_state_dict(model.state_dict())
    compiled = torch.compile(model, backend=backend, fullgraph=True)
    x = torch.randn(3, 4, requires_grad=True)
    with npp.session(trace=False) as s:  # the first call compiles inside the session
        compiled(x).sum().backward()
        with torch._dynamo.config.patch(error_on_recompile=True):
            out = compiled(x)
    assert torch.equal(out, reference(x))
    summary = s.summary()
    assert {r.name: r.count for r in summary.regions} == {"Decorated.forward": 2}  # its frame runs eagerly
    assert summary.metadata["compiled_regions"] == ["scale"]
    assert summary.metadata["compiled_regions_where"]["scale"][0].startswith("Decorated.forward (")
    assert not counters["graph_break"]


def test_a_graph_break_of_the_users_own_inside_a_region_leaves_it_timed_eagerly() -> None:
    @npp.profiled("breaks")
    def breaks(x: torch.Tensor) -> torch.Tensor:
        y = x.sin()
        torch._dynamo.graph_break()
        return y.cos()

    def caller(x: torch.Tensor) -> torch.Tensor:
        with npp.profile_region("around"):
            return breaks(x) + 1

    compiled = torch.compile(caller, backend="eager")
    x = torch.randn(4)
    with npp.session(trace=False) as s:
        assert torch.allclose(compiled(x), x.sin().cos() + 1)
    with torch._dynamo.config.patch(error_on_recompile=True), npp.session(trace=False) as again:
        compiled(x)
    (reason,) = counters["graph_break"]
    assert "graph_break()" in reason  # the user's break, and no other
    for summary in (s.summary(), again.summary()):
        assert {r.name: r.count for r in summary.regions} == {"around": 1, "breaks": 1}
        assert summary.metadata["compiled_regions"] == []


def test_a_bad_region_name_inside_compiled_code_raises_as_it_would_eagerly() -> None:
    def bad(x: torch.Tensor) -> torch.Tensor:
        with npp.profile_region(""):
            return x + 1

    with pytest.raises(npp.errors.RegionError, match="non-empty str"):
        torch.compile(bad, backend="eager")(torch.randn(2))


@pytest.mark.parametrize("trace", [False, True], ids=["timer-only", "tracing"])
def test_compiled_call_decorated_from_outside_is_timed_with_device_events_and_sync(
    trace: bool, tmp_path: Any, trace_helpers: Any
) -> None:
    clock = ManualEventClock(tick=1000)  # each mark is an event 1000 ns after the previous one
    adapter = register_clock(npp.backends, "events", clock)
    timed = npp.profiled("compiled_body", sync=True)(torch.compile(body, backend="eager", fullgraph=True))
    with npp.session(backend="events", trace=trace, output_dir=tmp_path) as s:
        for _ in range(3):
            timed(torch.randn(4))
    stats = s.summary().region("compiled_body")
    assert stats.count == 3
    assert stats.total_ns == 3 * 1000  # two events per call, nothing else marked in between
    assert adapter.syncs == 2 * 3  # sync=True: at entry and at exit of each call
    assert s.summary().metadata["compiled_regions"] == ["inner", "scale"]
    if trace:
        events = trace_helpers.annotations(trace_helpers.load(s.trace_paths[0]))
        assert [e["name"] for e in events].count("compiled_body") == 3


def test_idle_regions_compile_fullgraph_even_before_any_session_or_install() -> None:
    # A fresh process that imports npuprofile before torch, so nothing is registered with Dynamo yet.
    code = (
        "import npuprofile as npp\n"
        "import torch\n"
        "from npuprofile.core import compile as _compile\n"
        "assert not _compile.READY\n"
        "@npp.profiled\n"
        "def g(x):\n"
        "    return x * 2\n"
        "def f(x):\n"
        "    with npp.profile_region('r'):\n"
        "        return g(x) + 1\n"
        "print(torch.compile(f, backend='eager', fullgraph=True)(torch.zeros(2)).tolist())\n"
        "assert _compile.READY\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[1.0, 1.0]"


def test_compiled_torch_transformer_with_hooks_lists_every_module_region_without_recompiling() -> None:
    torch._dynamo.reset()
    torch.manual_seed(0)
    encoder = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=True),
        num_layers=2,
        enable_nested_tensor=False,
    )
    x = torch.randn(2, 5, 16)
    expected = encoder(x)
    with npp.profile_module(encoder, depth=3) as hooks:
        compiled = torch.compile(encoder, backend="eager", fullgraph=True)
        with npp.session(trace=False) as s:  # the first call compiles inside the session
            out = compiled(x)
        with torch._dynamo.config.patch(error_on_recompile=True):
            compiled(x)  # idle: same graph
            with npp.session(trace=False) as again:
                compiled(x)
    torch._dynamo.reset()
    assert torch.equal(out, expected)
    in_graph = set(hooks.names.values()) - {"layers"}  # a ModuleList is never called
    assert {"TransformerEncoder", "layers.1", "layers.1.self_attn", "layers.1.norm2", "layers.1.dropout2"} <= in_graph
    for summary in (s.summary(), again.summary()):
        # Dynamo traces a torch.nn module's own hooks too when the module is compiled directly:
        # the root is inside the graph as well (a user-defined root's hooks run outside it).
        assert summary.regions == []
        assert set(summary.metadata["compiled_regions"]) == in_graph
