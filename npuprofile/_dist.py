"""Which rank this process is, and the run id its files share with the other ranks."""

from __future__ import annotations

import os
import sys
import time
import uuid
from typing import Mapping

from ._config import parse_int


def rank_and_world_size(environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``(rank, world_size)`` from ``torch.distributed`` when initialised, else ``RANK``/``WORLD_SIZE``."""
    dist = sys.modules.get("torch.distributed")
    try:
        if dist is not None and dist.is_available() and dist.is_initialized():
            return int(dist.get_rank()), int(dist.get_world_size())
    except Exception:  # a half-torn-down process group: fall back to the environment
        pass
    env = os.environ if environ is None else environ
    rank_text = env.get("RANK") or env.get("LOCAL_RANK") or "0"
    rank = parse_int(rank_text, "RANK")
    world = parse_int(env.get("WORLD_SIZE") or "1", "WORLD_SIZE", 1)
    return rank, world


def default_run_id(environ: Mapping[str, str] | None = None) -> str:
    """A run id shared by the ranks of one launch where the launcher provides one, else a fresh one."""
    env = os.environ if environ is None else environ
    for variable in ("TORCHELASTIC_RUN_ID", "SLURM_JOB_ID"):
        value = env.get(variable, "").strip()
        if value and value != "none":
            return value
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
