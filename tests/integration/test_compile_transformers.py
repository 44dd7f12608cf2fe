"""Real model code under torch.compile: tiny randomly initialised GPT-2 and Llama models from transformers.

Built from configs (no downloaded weights, no network). Their layer classes
are patched with ``npp.profiled``, or the model is hooked with
``profile_module``, then compiled with ``fullgraph=True``; the first call runs
inside a session, later ones alternate idle and in sessions, with and without
backward. Checks: no graph break, no recompilation, outputs and gradients
equal to the eager model, and every region listed as inside the graph.
Needs the ``test`` extra (``transformers``).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch._dynamo.utils import counters

import npuprofile as npp

transformers = pytest.importorskip("transformers", reason="the test extra (transformers) is not installed")
from transformers.models.gpt2 import modeling_gpt2  # noqa: E402
from transformers.models.llama import modeling_llama  # noqa: E402

pytestmark = pytest.mark.usefixtures("fresh_dynamo")  # no graph or counter of another test

VOCAB = 64


def tiny_gpt2() -> Any:
    config = transformers.GPT2Config(
        n_layer=2, n_embd=32, n_head=4, n_positions=16, vocab_size=VOCAB, bos_token_id=0, eos_token_id=0,
        attn_pdrop=0.0, resid_pdrop=0.0, embd_pdrop=0.0,
    )
    return modeling_gpt2.GPT2Model(config)


def tiny_llama() -> Any:
    config = transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=32,
    )
    return modeling_llama.LlamaModel(config)


#: Per model: how to build it, the module of its classes, the layer classes patched, and the
#: ``profile_module`` selection with the module paths it must hook.
MODELS: dict[str, dict[str, Any]] = {
    "gpt2": {
        "build": tiny_gpt2,
        "module": modeling_gpt2,
        "patched": ("GPT2Block", "GPT2Attention", "GPT2MLP"),
        "include": ["h.*"],
        "exclude": ["*.drop", "*.*dropout", "*.act"],
        "hooked": {f"h.{i}{part}" for i in range(2) for part in (
            "", ".ln_1", ".attn", ".attn.c_attn", ".attn.c_proj", ".ln_2", ".mlp", ".mlp.c_fc", ".mlp.c_proj")},
    },
    "llama": {
        "build": tiny_llama,
        "module": modeling_llama,
        "patched": ("LlamaDecoderLayer", "LlamaAttention", "LlamaMLP", "LlamaRMSNorm"),
        "include": ["layers.*", "norm"],
        "exclude": ["*.act_fn"],
        "hooked": {"norm"} | {f"layers.{i}{part}" for i in range(2) for part in (
            "", ".self_attn", ".self_attn.q_proj", ".self_attn.k_proj", ".self_attn.v_proj", ".self_attn.o_proj",
            ".mlp", ".mlp.gate_proj", ".mlp.up_proj", ".mlp.down_proj", ".input_layernorm",
            ".post_attention_layernorm")},
    },
}


def build(kind: str) -> Any:
    torch.manual_seed(0)
    return MODELS[kind]["build"]()


def patch_layers(kind: str, monkeypatch: Any) -> set[str]:
    """Patch the model's layer classes' ``forward`` with ``npp.profiled``; return the region names."""
    spec = MODELS[kind]
    for name in spec["patched"]:
        layer = getattr(spec["module"], name)
        monkeypatch.setattr(layer, "forward", npp.profiled(layer.forward))
    return {f"{name}.forward" for name in spec["patched"]}


def forward(model: Any, tokens: torch.Tensor, backward: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    hidden = model(tokens).last_hidden_state
    if not backward:
        return hidden.detach(), []
    hidden.sum().backward()
    return hidden.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


def tokens() -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(
    ("kind", "how", "backend"),
    [
        ("gpt2", "patched", "eager"),
        ("gpt2", "patched", "aot_eager"),
        ("gpt2", "profile_module", "aot_eager"),
        ("llama", "patched", "aot_eager"),
        ("llama", "profile_module", "eager"),
        pytest.param("llama", "patched", "inductor", marks=pytest.mark.slow),
    ],
)
def test_tiny_model_compiles_fullgraph_with_its_layers_profiled(
    kind: str, how: str, backend: str, monkeypatch: Any
) -> None:
    reference = build(kind)
    model = build(kind)
    handle = None
    if how == "patched":
        expected = patch_layers(kind, monkeypatch)
    else:
        spec = MODELS[kind]
        handle = npp.profile_module(model, include=spec["include"], exclude=spec["exclude"])
        expected = spec["hooked"]
        assert set(handle.names.values()) == expected
    compiled = torch.compile(model, backend=backend, fullgraph=True)
    exact = backend != "inductor"
    x = tokens()
    for index, (in_session, backward) in enumerate([(True, True), (False, False), (True, False), (False, True)]):
        expected_out, expected_grads = forward(reference, x, backward)
        with torch._dynamo.config.patch(error_on_recompile=index > 0):
            if in_session:
                with npp.session(trace=False) as s:
                    out, grads = forward(compiled, x, backward)
                summary = s.summary()
                assert set(summary.metadata["compiled_regions"]) == expected
                assert all(len(places) == 1 for places in summary.metadata["compiled_regions_where"].values())
                assert [r.name for r in summary.regions] == []  # every region ran inside the graph
            else:
                out, grads = forward(compiled, x, backward)
        if exact:
            assert torch.equal(out, expected_out)
        else:
            assert torch.allclose(out, expected_out, rtol=0, atol=1e-5)
        assert len(grads) == len(expected_grads) and all(
            torch.allclose(a, b, rtol=0, atol=1e-6 if exact else 1e-4) for a, b in zip(grads, expected_grads)
        )
    assert not counters["graph_break"], dict(counters["graph_break"])
    if handle is not None:
        handle.remove()


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_tiny_model_compiled_ranges_time_its_patched_layers(kind: str, monkeypatch: Any) -> None:
    expected = patch_layers(kind, monkeypatch)
    model = build(kind)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    with torch.no_grad():
        expected_out = model(tokens()).last_hidden_state
        with npp.session(trace=False, compiled_ranges=True) as s:
            out = compiled(tokens()).last_hidden_state
    assert torch.equal(out, expected_out)
    counts = {r.name: r.count for r in s.summary().regions}
    per_model = {"LlamaRMSNorm.forward": 5}  # two per layer and the final norm
    assert counts == {name: per_model.get(name, 2) for name in expected}
    assert s.summary().metadata["compiled_regions"] == []
    assert not counters["graph_break"], dict(counters["graph_break"])
