"""Which rank this process is, and the run id its files share with the other ranks."""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from typing import Any, Mapping

from npuprofile.sessions.config import parse_int

logger = logging.getLogger("npuprofile")

#: Key under which the ranks of one ``torch.distributed`` job agree on a run id (in the default store).
RUN_ID_KEY = "npuprofile/run_id"


def rank_and_world_size(environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``(rank, world_size)`` from ``torch.distributed`` when initialised, else ``RANK``/``WORLD_SIZE``."""
    dist = _initialised_dist()
    if dist is not None:
        try:
            return int(dist.get_rank()), int(dist.get_world_size())
        except Exception:  # a half-torn-down process group: fall back to the environment
            pass
    env = os.environ if environ is None else environ
    rank_text = env.get("RANK") or env.get("LOCAL_RANK") or "0"
    rank = parse_int(rank_text, "RANK")
    world = parse_int(env.get("WORLD_SIZE") or "1", "WORLD_SIZE", 1)
    return rank, world


def launcher_run_id(environ: Mapping[str, str] | None = None) -> str | None:
    """The job id a launcher gives every rank (torchrun, Slurm), or ``None``."""
    env = os.environ if environ is None else environ
    elastic = env.get("TORCHELASTIC_RUN_ID", "").strip()
    if elastic and elastic != "none":  # torchrun's default rendezvous id is the word "none"
        return elastic
    job = env.get("SLURM_JOB_ID", "").strip()
    if job:
        step = env.get("SLURM_STEP_ID", "").strip()
        return f"{job}.{step}" if step else job
    return None


def fresh_run_id() -> str:
    """A new run id: local time plus a random suffix."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def default_run_id(environ: Mapping[str, str] | None = None) -> str:
    """A run id shared by the ranks of one job.

    In order: the launcher's job id (``TORCHELASTIC_RUN_ID``, ``SLURM_JOB_ID``);
    when ``torch.distributed`` is initialised, one id agreed through the default
    process group's store (the first rank to ask sets it, the others read it: a
    single non-blocking compare-and-set, so ranks that never start a session
    cannot make the others wait); else a fresh id for this process.
    ``NPUPROFILE_RUN_ID`` / ``run_id=`` override all of these (see the session).
    """
    launched = launcher_run_id(environ)
    if launched:
        return launched
    candidate = fresh_run_id()
    return agree_through_store(candidate) or candidate


def agree_through_store(candidate: str) -> str | None:
    """The run id of this job as the first rank proposed it, or ``None`` without a usable store."""
    dist = _initialised_dist()
    if dist is None:
        return None
    try:
        from torch.distributed import distributed_c10d

        store: Any = distributed_c10d._get_default_store()
        agreed = store.compare_set(RUN_ID_KEY, "", candidate)
    except Exception as exc:  # a store without compare_set, or a broken group: keep the local id
        logger.debug("npuprofile: cannot agree on a run id through the process group's store: %s", exc)
        return None
    text = agreed.decode("utf-8", "replace") if isinstance(agreed, bytes) else str(agreed)
    return text or None


def _initialised_dist() -> Any:
    """``torch.distributed`` when imported, available and initialised, else ``None`` (never imports torch)."""
    dist = sys.modules.get("torch.distributed")
    try:
        if dist is not None and dist.is_available() and dist.is_initialized():
            return dist
    except Exception:
        pass
    return None
