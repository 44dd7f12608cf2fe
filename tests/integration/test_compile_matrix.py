"""Every kind of region under torch.compile, across compile settings and session orders.

One model (``compile_models.Net``) holds a decorated function, a decorated
method, a decorated ``forward``, a patched class attribute, ``profile_module``
hooks and a ``profile_region`` block, so each compile covers all of them. Each
case compiles the module or a decorated function calling it, with a given
backend, ``fullgraph`` and ``dynamic``, and makes its first call inside or
outside a session; then it alternates calls idle, in a timer-only session and
in a tracing session, with and without backward. Every case checks: no
exception, no graph break, no recompilation after the first call
(``error_on_recompile``), outputs and gradients equal to eager, and each
session's summary accounting for every region: timed where it ran eagerly
(and a range in the trace of the tracing session), listed with where it was
seen where it ran inside a graph; a last session that only runs eager code
lists nothing compiled. 32 cases on ``eager`` and ``aot_eager`` (the full
product of the other axes) and 2 on inductor (its compiles take tens of
seconds here); each case is one compile, reused by all its calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from torch._dynamo.utils import counters

import npuprofile as npp
from tests.conftest import load_trace, user_annotations
from tests.integration import compile_models as models

pytestmark = pytest.mark.usefixtures("fresh_dynamo")  # no graph or counter of another test

# (session: None for idle, "timer" or "trace"; with backward?) for each call; the first call compiles.
ORDERS: dict[str, list[tuple[str | None, bool]]] = {
    "inside": [("timer", True), (None, False), ("trace", False), (None, True)],
    "outside": [(None, True), ("trace", True), (None, False), ("timer", False)],
}


def compiled_call(target: str, backend: str, fullgraph: bool, dynamic: bool) -> tuple[Callable[..., Any], Any]:
    """The compiled callable (decorated from outside as region "outer") and the model it runs."""
    net, _hooks = models.hooked_net()
    if target == "module":
        compiled: Any = torch.compile(net, backend=backend, fullgraph=fullgraph, dynamic=dynamic)
        call = compiled
    else:
        run = npp.profiled("run")(models.runner(net))
        call = torch.compile(run, backend=backend, fullgraph=fullgraph, dynamic=dynamic)

    return npp.profiled("outer")(call), net


def expected_regions(target: str) -> tuple[set[str], set[str], str]:
    """(timed regions, regions inside the graph, the compiled frame they are seen in) for ``target``."""
    if target == "module":
        return {"outer", "Net"}, set(models.INNER_REGIONS), "Net.forward ("
    return {"outer", "run"}, {*models.INNER_REGIONS, "Net"}, "runner.<locals>.run ("


def session(kind: str, out_dir: Path) -> npp.Session:
    return npp.session(trace=False) if kind == "timer" else npp.session(output_dir=out_dir)


def check_case(target: str, backend: str, fullgraph: bool, dynamic: bool, first: str, out_dir: Path) -> None:
    reference_net, _ = models.hooked_net()
    x = models.example_input()
    exact = backend != "inductor"
    call, net = compiled_call(target, backend, fullgraph, dynamic)
    timed, in_graph, where = expected_regions(target)
    for index, (kind, backward) in enumerate(ORDERS[first]):
        expected_out, expected_grads = models.step(reference_net, reference_net, x, backward)
        with torch._dynamo.config.patch(error_on_recompile=index > 0):
            if kind is not None:
                with session(kind, out_dir) as s:
                    out, grads = models.step(call, net, x, backward)
            else:
                out, grads = models.step(call, net, x, backward)
        assert not counters["graph_break"], dict(counters["graph_break"])
        if exact:
            assert torch.equal(out, expected_out)
            assert all(torch.equal(a, b) for a, b in zip(grads, expected_grads, strict=True))
        else:
            assert torch.allclose(out, expected_out, atol=1e-5)
            assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(grads, expected_grads, strict=True))
        if kind is not None:
            summary = s.summary()
            assert {r.name: r.count for r in summary.regions} == dict.fromkeys(timed, 1)
            assert set(summary.metadata["compiled_regions"]) == in_graph
            for name, places in summary.metadata["compiled_regions_where"].items():
                assert len(places) == 1 and places[0].startswith(where), (name, places)
        if kind == "trace":
            (path,) = s.trace_paths
            assert timed <= {e["name"] for e in user_annotations(load_trace(path))}
    with npp.session(trace=False) as eager_only:  # compiled code that ran before must not leak in
        models.step(reference_net, reference_net, x, backward=False)
    assert {r.name for r in eager_only.summary().regions} == {*models.INNER_REGIONS, "Net"}
    assert eager_only.summary().metadata["compiled_regions"] == []
    assert eager_only.summary().metadata["compiled_regions_where"] == {}


@pytest.mark.parametrize("first", ["inside", "outside"])
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("fullgraph", [True, False], ids=["fullgraph", "breaks-allowed"])
@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
@pytest.mark.parametrize("target", ["module", "function"])
def test_matrix(target: str, backend: str, fullgraph: bool, dynamic: bool, first: str, tmp_path: Path) -> None:
    check_case(target, backend, fullgraph, dynamic, first, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("target", "fullgraph", "dynamic", "first"),
    [("module", True, False, "inside"), ("function", False, True, "outside")],
)
def test_matrix_inductor(target: str, fullgraph: bool, dynamic: bool, first: str, tmp_path: Path) -> None:
    check_case(target, "inductor", fullgraph, dynamic, first, tmp_path)


def test_eager_model_times_every_region() -> None:
    """The same model run eagerly: every region is timed, none is listed as compiled."""
    net, _ = models.hooked_net()
    with npp.session(trace=False) as s:
        models.step(net, net, models.example_input(), backward=True)
    summary = s.summary()
    counts = {r.name: r.count for r in summary.regions}
    assert set(counts) == {*models.INNER_REGIONS, "Net"}
    assert counts["Block.forward"] == 2 and counts["head_region"] == 1
    assert summary.metadata["compiled_regions"] == []
