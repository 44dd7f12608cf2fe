"""Compiled ranges: regions kept inside compiled graphs as ordered operators, timed and shown in the trace.

Eager and aot_eager run the timing cases; inductor (slow here) the trace nesting
case, the one that matters: its kernels are fused and scheduled by the compiler.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch._dynamo.utils import counters

import npuprofile as npp
from tests.integration import compile_models as models

pytestmark = pytest.mark.usefixtures("fresh_dynamo")  # no graph or counter of another test


def range_ops(backend: str) -> tuple[Any, list[str]]:
    """A backend that records the operator names of every graph it compiles, then compiles with ``backend``."""
    names: list[str] = []
    inner = torch._dynamo.lookup_backend(backend)

    def recording(gm: torch.fx.GraphModule, example_inputs: Any) -> Any:
        names.extend(str(node.target) for node in gm.graph.nodes if node.op == "call_function")
        return inner(gm, example_inputs)

    return recording, names


EVERY_REGION = {*models.INNER_REGIONS, "Net"}
CALLS = {"Net": 1, "Block.forward": 2, "Attn.forward": 2, "Block.mix": 2, "head_region": 1, "helper_fn": 1}


@pytest.mark.parametrize(("backend", "dynamic"), [("eager", False), ("aot_eager", True)])
def test_ranges_time_every_region_inside_the_graph_without_recompiling(backend: str, dynamic: bool) -> None:
    reference_net, _ = models.hooked_net()
    net, _ = models.hooked_net()
    x = models.example_input()
    compiled = torch.compile(net, backend=backend, fullgraph=True, dynamic=dynamic)
    with npp.session(trace=False, compiled_ranges=True) as s:
        out, grads = models.step(compiled, net, x, backward=True)
    expected_out, expected_grads = models.step(reference_net, reference_net, x, backward=True)
    assert torch.equal(out, expected_out)
    assert all(torch.equal(a, b) for a, b in zip(grads, expected_grads, strict=True))
    counts = {r.name: r.count for r in s.summary().regions}
    assert set(counts) == EVERY_REGION
    assert all(counts[name] == calls for name, calls in CALLS.items())
    assert s.summary().metadata["compiled_regions"] == []
    with torch._dynamo.config.patch(error_on_recompile=True):
        compiled(x)  # idle: the operators run and record nothing
        with npp.session(trace=False) as without:  # a session that did not ask for ranges
            compiled(x)
        with npp.session(trace=False, compiled_ranges=True) as again:
            compiled(x)
    assert {r.name for r in without.summary().regions} == {"Net"}
    assert set(without.summary().metadata["compiled_regions"]) == set(models.INNER_REGIONS)
    assert {r.name: r.count for r in again.summary().regions} == counts
    assert not counters["graph_break"]


def test_no_operator_enters_a_graph_unless_ranges_are_asked_for() -> None:
    backend, names = range_ops("eager")
    plain = torch.compile(models.hooked_net()[0], backend=backend, fullgraph=True)
    with npp.session(trace=False):
        plain(models.example_input())
    assert names and not any("npuprofile" in name for name in names)
    names.clear()
    torch._dynamo.reset()
    ranged = torch.compile(models.hooked_net()[0], backend=backend, fullgraph=True)
    with npp.session(trace=False, compiled_ranges=True):
        ranged(models.example_input())
    pushes = [n for n in names if n == "npuprofile.range_push.default"]
    pops = [n for n in names if n == "npuprofile.range_pop.default"]
    in_graph = sum(CALLS.values()) - CALLS["Net"] + len(models.HOOKED)  # the root module's hooks stay eager
    assert len(pushes) == len(pops) == in_graph


def test_environment_variable_puts_ranges_into_graphs_compiled_outside_sessions(monkeypatch: Any) -> None:
    monkeypatch.setenv("NPUPROFILE_COMPILED_RANGES", "1")
    net, _ = models.hooked_net()
    compiled = torch.compile(net, backend="eager", fullgraph=True)
    x = models.example_input()
    compiled(x)  # compiled idle, with the operators
    with torch._dynamo.config.patch(error_on_recompile=True):
        with npp.session(trace=False) as s:  # the session's option defaults to the same variable
            compiled(x)
    assert {r.name for r in s.summary().regions} == EVERY_REGION
    assert s.config.compiled_ranges is True


def test_without_the_operators_ranges_fall_back_to_listing_and_say_so(monkeypatch: Any, caplog: Any) -> None:
    from npuprofile.core import graph

    monkeypatch.setattr(graph, "_PUSH", None)  # as on a torch that cannot register effectful operators
    compiled = torch.compile(models.hooked_net()[0], backend="eager", fullgraph=True)
    with caplog.at_level("WARNING", logger="npuprofile"), npp.session(trace=False, compiled_ranges=True) as s:
        compiled(models.example_input())
    assert "compiled ranges are not available" in caplog.text
    assert {r.name for r in s.summary().regions} == {"Net"}
    assert set(s.summary().metadata["compiled_regions"]) == set(models.INNER_REGIONS)


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_a_bad_compiled_ranges_value_is_refused_before_anything_starts(value: str, monkeypatch: Any) -> None:
    with pytest.raises(npp.errors.ConfigError, match="compiled_ranges"):
        npp.session(trace=False, compiled_ranges=value)
    monkeypatch.setenv("NPUPROFILE_COMPILED_RANGES", value)
    with pytest.raises(npp.errors.ConfigError, match="NPUPROFILE_COMPILED_RANGES"):
        npp.session(trace=False)


def test_range_left_open_by_a_failing_graph_is_closed_with_its_eager_parent() -> None:
    def factor(a: torch.Tensor) -> torch.Tensor:
        with npp.profile_region("factor_range"):
            return torch.linalg.cholesky(a) * 2  # raises at run time for a matrix that is not positive definite

    compiled = torch.compile(factor, backend="eager", fullgraph=True)
    good, bad = torch.eye(3), -torch.eye(3)
    with npp.session(trace=False, compiled_ranges=True) as s:
        with npp.profile_region("call"):
            compiled(good)
        with torch._dynamo.config.patch(error_on_recompile=True):
            with pytest.raises(torch.linalg.LinAlgError), npp.profile_region("call"):
                compiled(bad)  # raises inside the graph, between push and pop
            with npp.profile_region("call"):
                assert npp.current_region().name == "call"  # the failed range did not stay open under it
                assert torch.equal(compiled(good), 2 * torch.eye(3))
        assert npp.current_region() is None
    counts = {r.name: r.count for r in s.summary().regions}
    assert counts == {"call": 3, "factor_range": 3}


def contains(outer: dict[str, Any], inner: dict[str, Any]) -> bool:
    return outer["ts"] <= inner["ts"] and inner["ts"] + inner["dur"] <= outer["ts"] + outer["dur"]


@pytest.mark.slow
def test_inductor_ranges_nest_in_the_trace_around_the_kernels_of_their_code(tmp_path: Any, trace_helpers: Any) -> None:
    import torch._inductor.config

    reference_net, _ = models.hooked_net()
    net, _ = models.hooked_net()
    x = models.example_input()
    compiled = torch.compile(net, backend="inductor", fullgraph=True)
    # torch's own patch, not monkeypatch: monkeypatch's undo deletes the option, and torch then hides it
    # for the rest of the process (every later inductor compile on CPU fails reading it).
    with torch._inductor.config.patch({"cpp.enable_kernel_profile": True}):  # name the fused kernels
        with npp.session(trace=False, compiled_ranges=True):
            models.step(compiled, net, x, backward=True)  # compiles forward and backward
        with torch._dynamo.config.patch(error_on_recompile=True):
            with npp.session(output_dir=tmp_path, compiled_ranges=True) as s:
                out, grads = models.step(compiled, net, x, backward=True)
    expected_out, expected_grads = models.step(reference_net, reference_net, x, backward=True)
    assert torch.allclose(out, expected_out, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(grads, expected_grads, strict=True))
    trace = trace_helpers.load(s.trace_paths[0])
    ranges = trace_helpers.annotations(trace)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for event in ranges:
        by_name.setdefault(event["name"], []).append(event)
    assert {name: len(by_name.get(name, [])) for name in CALLS} == CALLS
    # Nesting as the code nests: each block inside the root, its parts inside it, in order.
    (root,) = by_name["Net"]
    blocks = sorted(by_name["Block.forward"], key=lambda e: e["ts"])
    assert all(contains(root, block) for block in blocks)
    assert blocks[0]["ts"] + blocks[0]["dur"] <= blocks[1]["ts"]
    for index, block in enumerate(blocks):
        parts = [by_name[name][index] for name in ("Attn.forward", "Block.mix")]
        (norm,) = by_name[f"blocks.{index}.norm"]
        assert all(contains(block, part) for part in (norm, *parts))
        assert norm["ts"] + norm["dur"] <= parts[0]["ts"] <= parts[1]["ts"]
    (head_region,) = by_name["head_region"]
    assert contains(head_region, by_name["head"][0]) and contains(head_region, by_name["helper_fn"][0])
    # The kernels the compiler emitted for a layer's code lie inside that layer's range.
    kernels = [e for e in trace["traceEvents"] if e.get("ph") == "X" and e.get("name") in ("aten::addmm", "aten::mm")]
    for name, calls in (("Attn.forward", 2), ("Block.mix", 2), ("head", 1)):
        for event in by_name[name]:
            assert any(contains(event, k) and k["tid"] == event["tid"] for k in kernels), name
    fused = [e for e in trace["traceEvents"] if e.get("ph") == "X" and "cpp_fused" in str(e.get("name"))]
    assert fused and all(contains(root, kernel) for kernel in fused if kernel["ts"] < root["ts"] + root["dur"])
    assert s.summary().metadata["compiled_regions"] == []
    assert not counters["graph_break"]
