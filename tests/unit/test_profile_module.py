"""npp.profile_module: module-path regions, nesting, filters, exceptions, shared modules, clean removal."""

from __future__ import annotations

import copy
import threading
from typing import Any

import pytest
import torch

import npuprofile as npp
from npuprofile.errors import ConfigError


class Attn(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.proj(x))


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = Attn()
        self.mlp = torch.nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.attn(x))


class Net(torch.nn.Module):
    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList([Block(), Block()])
        self.head = torch.nn.Linear(8, 8)
        self.fail = fail

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        x = self.head(self.head(x))  # shared: called twice in one forward
        if self.fail:
            raise ValueError("boom")
        return x


ALL = {"Net", "layers", "layers.0", "layers.0.attn", "layers.0.attn.proj", "layers.0.mlp",
       "layers.1", "layers.1.attn", "layers.1.attn.proj", "layers.1.mlp", "head"}


def hook_state(model: torch.nn.Module) -> list[Any]:
    """Every hook dict of every module, by identity of the hooks."""
    fields = [name for name in vars(torch.nn.Module()) if "hook" in name]
    return [(path, field, list(getattr(module, field).items())) for path, module in model.named_modules()
            for field in fields if isinstance(getattr(module, field, None), dict)]


def run(model: torch.nn.Module, steps: int = 2) -> npp.Summary:
    with npp.session(trace=False, backend="cpu") as s:
        for _ in s.steps(range(steps)):
            model(torch.randn(3, 8))
    return s.summary()


def test_every_module_is_a_region_named_by_its_path_and_nesting_gives_self_time() -> None:
    model = Net()
    with npp.profile_module(model) as handle:
        summary = run(model, steps=3)
    assert set(handle.names.values()) == ALL
    assert {r.name for r in summary.regions} == ALL - {"layers"}  # a ModuleList is never called
    assert summary.region("head").count == 6  # shared module: two regions per forward
    assert summary.region("Net").count == 3
    net, head = summary.region("Net"), summary.region("head")
    children = summary.region("layers.0").total_ns + summary.region("layers.1").total_ns + head.total_ns
    assert net.self_ns == net.total_ns - children
    block = summary.region("layers.0")
    assert block.self_ns == block.total_ns - summary.region("layers.0.attn").total_ns - summary.region("layers.0.mlp").total_ns


def test_depth_include_exclude_and_prefix() -> None:
    model = Net()
    with npp.profile_module(model, depth=2) as handle:
        assert set(handle.names) == {"", "layers", "layers.0", "layers.1", "head"}
    with npp.profile_module(model, include="layers.*.attn*", exclude=["*.proj"]) as handle:
        assert set(handle.names) == {"layers.0.attn", "layers.1.attn"}
    with npp.profile_module(model, depth=0, prefix="enc") as handle:
        assert handle.names == {"": "enc"}
    with npp.profile_module(model, depth=1, prefix="enc") as handle:
        assert set(handle.names.values()) == {"enc", "enc.layers", "enc.head"}
        summary = run(model, steps=1)
    assert {r.name for r in summary.regions} == {"enc", "enc.head"}


def test_remove_leaves_the_model_exactly_as_before() -> None:
    torch.manual_seed(0)
    model = Net()
    x = torch.randn(3, 8)
    before_hooks = hook_state(model)
    before_state = copy.deepcopy(model.state_dict())
    expected = model(x)
    handle = npp.profile_module(model)
    assert hook_state(model) != before_hooks
    with npp.session(trace=False):
        assert torch.equal(model(x), expected)  # hooks never change outputs
    handle.remove()
    handle.remove()  # twice is fine
    assert not handle.active
    assert hook_state(model) == before_hooks
    assert all(torch.equal(before_state[k], v) for k, v in model.state_dict().items())
    assert model.state_dict().keys() == before_state.keys()
    assert torch.equal(model(x), expected)
    with npp.session(trace=False) as s:
        model(x)
    assert not s.summary().regions


def test_regions_close_when_forward_raises() -> None:
    model = Net(fail=True)
    with npp.profile_module(model, depth=1):
        with npp.session(trace=False) as s:
            with pytest.raises(ValueError, match="boom"):
                model(torch.randn(3, 8))
            assert npp.current_region() is None  # nothing left open
            with npp.profile_region("after"):
                pass
    summary = s.summary()
    assert summary.region("Net").count == 1
    assert summary.region("head").count == 2
    assert summary.region("after").count == 1


def test_reentrant_module_nests_its_own_regions() -> None:
    class Recursive(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)

        def forward(self, x: torch.Tensor, depth: int = 3) -> torch.Tensor:
            x = self.lin(x)
            return self(x, depth - 1) if depth > 1 else x

    model = Recursive()
    with npp.profile_module(model):
        with npp.session(trace=False) as s:
            model(torch.randn(2, 4))
    summary = s.summary()
    outer = summary.region("Recursive")
    assert outer.count == 3
    lin = summary.region("lin")
    assert lin.count == 3
    # Each level's self time excludes its nested call of itself: the selves add up to the
    # outermost call (the longest) minus the three Linear calls.
    assert outer.self_ns == outer.max_ns - lin.total_ns


def test_threads_calling_the_same_model_keep_separate_stacks() -> None:
    model = Net()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(5):
                model(torch.randn(2, 8))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with npp.profile_module(model, depth=1):
        with npp.session(trace=False) as s:
            threads = [threading.Thread(target=worker) for _ in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    assert not errors
    summary = s.summary()
    assert summary.region("Net").count == 15 and summary.region("head").count == 30
    net = summary.region("Net")
    assert 0 <= net.self_ns <= net.total_ns


def test_idle_hooks_record_nothing_and_session_started_later_works() -> None:
    model = Net()
    with npp.profile_module(model, depth=1) as handle:
        model(torch.randn(2, 8))  # no session: hooks are a length check
        summary = run(model, steps=1)
    assert summary.region("Net").count == 1
    assert "attached" not in repr(handle)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"depth": -1}, "depth=-1"),
        ({"depth": "2"}, "depth='2'"),
        ({"include": ""}, "include=''"),
        ({"exclude": [3]}, "exclude=\\[3\\]"),
        ({"include": []}, "include=\\[\\]"),
        ({"prefix": ""}, "prefix=''"),
        ({"sync": "yes"}, "sync='yes'"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, message: str) -> None:
    model = Net()
    before = hook_state(model)
    with pytest.raises(ConfigError, match=message):
        npp.profile_module(model, **kwargs)
    assert hook_state(model) == before


def test_needs_a_module() -> None:
    with pytest.raises(ConfigError, match="torch.nn.Module"):
        npp.profile_module(lambda x: x)
