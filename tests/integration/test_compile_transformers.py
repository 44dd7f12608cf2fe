"""Real model code under torch.compile: a tiny randomly initialised GPT-2 from the transformers package.

Built from a config (no downloaded weights). Its layer classes are patched with
``npp.profiled``, or hooked with ``profile_module``, then compiled with
``fullgraph=True``; the first call runs inside a session, later ones alternate.
Needs the ``test`` extra (``transformers``).
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest
import torch
from torch._dynamo.utils import counters

import npuprofile as npp

transformers = pytest.importorskip("transformers", reason="the test extra (transformers) is not installed")
from transformers.models.gpt2 import modeling_gpt2  # noqa: E402

PATCHED = ("GPT2Block", "GPT2Attention", "GPT2MLP")


@pytest.fixture(autouse=True)
def fresh_dynamo() -> Iterator[None]:
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def tiny_gpt2() -> Any:
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_layer=2, n_embd=32, n_head=4, n_positions=16, vocab_size=64, bos_token_id=0, eos_token_id=0,
        attn_pdrop=0.0, resid_pdrop=0.0, embd_pdrop=0.0,
    )
    return modeling_gpt2.GPT2Model(config)


def forward(model: Any, tokens: torch.Tensor, backward: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    hidden = model(tokens).last_hidden_state
    if not backward:
        return hidden.detach(), []
    hidden.sum().backward()
    return hidden.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize(
    ("how", "backend"), [("patched", "eager"), ("patched", "aot_eager"), ("profile_module", "aot_eager")]
)
def test_tiny_gpt2_compiles_fullgraph_with_its_layers_profiled(how: str, backend: str, monkeypatch: Any) -> None:
    reference = tiny_gpt2()
    model = tiny_gpt2()
    if how == "patched":
        for name in PATCHED:
            layer = getattr(modeling_gpt2, name)
            monkeypatch.setattr(layer, "forward", npp.profiled(layer.forward))
        expected = {f"{name}.forward" for name in PATCHED}
        handle = None
    else:
        handle = npp.profile_module(model, include=["h.*"], exclude=["*.drop", "*.*dropout", "*.act"])
        expected = {f"h.{i}{part}" for i in range(2) for part in ("", ".ln_1", ".attn", ".attn.c_attn",
                    ".attn.c_proj", ".ln_2", ".mlp", ".mlp.c_fc", ".mlp.c_proj")}
        assert set(handle.names.values()) == expected
    compiled = torch.compile(model, backend=backend, fullgraph=True)
    tokens = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(1))
    for index, (in_session, backward) in enumerate([(True, True), (False, False), (True, False)]):
        expected_out, expected_grads = forward(reference, tokens, backward)
        with torch._dynamo.config.patch(error_on_recompile=index > 0):
            if in_session:
                with npp.session(trace=False) as s:
                    out, grads = forward(compiled, tokens, backward)
                assert set(s.summary().metadata["compiled_regions"]) == expected
                assert [r.name for r in s.summary().regions] == []
            else:
                out, grads = forward(compiled, tokens, backward)
        assert torch.equal(out, expected_out)
        assert len(grads) == len(expected_grads) and all(
            torch.allclose(a, b, rtol=0, atol=1e-6) for a, b in zip(grads, expected_grads)
        )
    assert not counters["graph_break"], dict(counters["graph_break"])
    if handle is not None:
        handle.remove()


def test_tiny_gpt2_compiled_ranges_time_its_patched_layers(monkeypatch: Any) -> None:
    for name in PATCHED:
        layer = getattr(modeling_gpt2, name)
        monkeypatch.setattr(layer, "forward", npp.profiled(layer.forward))
    model = tiny_gpt2()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    tokens = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(1))
    with npp.session(trace=False, compiled_ranges=True) as s:
        with torch.no_grad():
            compiled(tokens)
    counts = {r.name: r.count for r in s.summary().regions}
    assert counts == {"GPT2Block.forward": 2, "GPT2Attention.forward": 2, "GPT2MLP.forward": 2}
    assert s.summary().metadata["compiled_regions"] == []
    assert not counters["graph_break"], dict(counters["graph_break"])
