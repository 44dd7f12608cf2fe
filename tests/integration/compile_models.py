"""A small model holding every kind of region, for the torch.compile tests.

- ``scaled``: a decorated module-level function called from ``forward``;
- ``Block.mix``: a decorated helper method; ``Block.forward``: a decorated ``forward``;
- ``Attn.forward``: a class attribute patched after the class was defined;
- ``head_region``: a ``with profile_region()`` block inside ``forward``;
- :func:`hooked_net`: ``profile_module`` hooks on the root and some submodules.
"""

from __future__ import annotations

from typing import Any

import torch

import npuprofile as npp

WIDTH = 8


@npp.profiled("helper_fn")
def scaled(x: torch.Tensor) -> torch.Tensor:
    return x * 2


class Attn(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q = torch.nn.Linear(WIDTH, WIDTH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.q(x), -1)


Attn.forward = npp.profiled(Attn.forward)  # type: ignore[method-assign]  # patched, as one patches a library


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = torch.nn.LayerNorm(WIDTH)
        self.attn = Attn()
        self.out = torch.nn.Linear(WIDTH, WIDTH)

    @npp.profiled
    def mix(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.out(x))

    @npp.profiled
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(self.attn(self.norm(x)))


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList([Block() for _ in range(2)])
        self.head = torch.nn.Linear(WIDTH, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        with npp.profile_region("head_region"):
            return scaled(self.head(x))


#: The module paths ``hooked_net`` hooks besides the root ("Net").
HOOKED = ("blocks.0.norm", "blocks.1.norm", "head")
#: Every region that runs inside ``Net.forward`` (the root's own hook region "Net" aside).
INNER_REGIONS = frozenset({"helper_fn", "Attn.forward", "Block.forward", "Block.mix", "head_region", *HOOKED})


def hooked_net(seed: int = 0) -> tuple[Net, npp.ModuleProfile]:
    """A fresh :class:`Net` (weights from ``seed``) with ``profile_module`` hooks on the root and :data:`HOOKED`."""
    torch.manual_seed(seed)
    net = Net()
    return net, npp.profile_module(net, include=["Net", *HOOKED])


def runner(model: torch.nn.Module) -> Any:
    """The function compiled when the tests compile a function rather than the module."""

    def run(x: torch.Tensor) -> torch.Tensor:
        return model(x)

    return run


def step(call: Any, model: torch.nn.Module, x: torch.Tensor, backward: bool) -> tuple[torch.Tensor, list[Any]]:
    """One call of ``call(x)``; with ``backward``, also the gradients of ``model``'s parameters."""
    model.zero_grad(set_to_none=True)
    out = call(x)
    if not backward:
        return out.detach(), []
    out.sum().backward()
    return out.detach(), [p.grad.clone() for p in model.parameters()]


def example_input() -> torch.Tensor:
    return torch.randn(2, 5, WIDTH, generator=torch.Generator().manual_seed(1))
