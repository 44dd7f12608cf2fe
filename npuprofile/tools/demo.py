"""The built-in demo: a small transformer-like model, profiled end to end."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from npuprofile.core.decorate import profiled
from npuprofile.core.region import profile_region
from npuprofile.sessions.config import schedule
from npuprofile.sessions.session import Session, session

logger = logging.getLogger("npuprofile")


def build_model(layers: int = 4, width: int = 128, heads: int = 4) -> Any:
    """A few transformer-like layers (attention + MLP), small enough to run in seconds on CPU."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm1 = nn.LayerNorm(width)
            self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
            self.norm2 = nn.LayerNorm(width)
            self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            with profile_region("attention"):
                h = self.norm1(x)
                x = x + self.attn(h, h, h, need_weights=False)[0]
            with profile_region("mlp"):
                x = x + self.mlp(self.norm2(x))
            return x

    class TinyTransformer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(1000, width)
            self.blocks = nn.ModuleList(Block() for _ in range(layers))
            self.head = nn.Linear(width, 1000)

        @profiled("forward")
        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            x = self.embed(tokens)
            for index, block in enumerate(self.blocks):
                with profile_region(f"layer.{index}"):
                    x = block(x)
            logits: torch.Tensor = self.head(x)
            return logits

    return TinyTransformer().eval()


def run_demo(
    output_dir: str | Path = "npuprofile-demo",
    backend: str | None = None,
    steps: int = 6,
    batch: int = 4,
    seq_len: int = 64,
    **session_options: Any,
) -> Session:
    """Profile the demo model for ``steps`` steps; return the stopped session."""
    import torch

    torch.manual_seed(0)
    profile = session(
        backend=backend,
        output_dir=output_dir,
        record_shapes=True,
        schedule=session_options.pop("schedule", schedule(wait=1, warmup=1, active=max(1, steps - 2))),
        **session_options,
    )
    chosen = profile.backend
    device = chosen.device if chosen is not None else "cpu"
    model = build_model().to(device)
    batches = [torch.randint(0, 1000, (batch, seq_len), device=device) for _ in range(steps)]
    with profile, torch.no_grad():
        for tokens in profile.steps(batches):
            with profile_region("step"):
                model(tokens)
    logger.info("npuprofile demo: %d steps on %s", steps, chosen.name if chosen else "none")
    return profile
