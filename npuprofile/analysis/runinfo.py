"""Run facts for a trace: the session summary npuprofile wrote next to it, and the trace's own metadata."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger("npuprofile")

SUMMARY_SUFFIX = ".summary.json"
#: Top-level trace keys worth carrying into a report (small ones only).
TRACE_KEYS = ("schemaVersion", "distributedInfo", "deviceProperties", "trace_id", "host_name",
              "baseTimeNanoseconds", "displayTimeUnit", "record_shapes", "cupti_version", "cuda_runtime_version",
              "cuda_driver_version", "hip_runtime_version", "with_stack", "profile_memory")
_SEARCH_LEVELS = 3


def find_session_summary(trace: Path) -> Path | None:
    """The ``<stem>.summary.json`` of the session that wrote ``trace``, if one is near it.

    Looks in the trace's directory and a few parents (torch_npu nests traces
    inside ``*_ascend_pt/ASCEND_PROFILER_OUTPUT``). A summary that lists the
    trace (or a folder holding it) in ``trace_paths`` wins; otherwise one whose
    stem starts the trace's file name.
    """
    trace = trace.resolve()
    directory = trace.parent
    for _ in range(_SEARCH_LEVELS):
        candidates = sorted(directory.glob(f"*{SUMMARY_SUFFIX}"))
        for candidate in candidates:
            listed = _trace_paths(candidate)
            if any(trace == path or path in trace.parents for path in listed):
                return candidate
        for candidate in candidates:
            stem = candidate.name[: -len(SUMMARY_SUFFIX)]
            if trace.name.startswith(stem + "."):
                return candidate
        if directory.parent == directory:
            break
        directory = directory.parent
    return None


def load_session_summary(path: Path) -> dict[str, Any] | None:
    """The JSON of a session summary, or None (with a log line) when unreadable."""
    try:
        with open(path, "rb") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        logger.warning("npuprofile: ignoring unreadable session summary %s: %s", path, exc)
        return None
    return data if isinstance(data, dict) else None


def trace_facts(metadata: dict[str, Any]) -> dict[str, Any]:
    """The small, useful top-level keys of a trace."""
    return {key: metadata[key] for key in TRACE_KEYS if key in metadata}


def rank_of(trace_metadata: dict[str, Any], session_metadata: dict[str, Any] | None) -> int | None:
    """The rank a trace belongs to: from the session summary, else torch's ``distributedInfo``."""
    rank = session_metadata.get("rank") if session_metadata else None
    if isinstance(rank, int):
        return rank
    info = trace_metadata.get("distributedInfo")
    rank = info.get("rank") if isinstance(info, dict) else None
    return rank if isinstance(rank, int) else None


def _trace_paths(summary: Path) -> list[Path]:
    data = load_session_summary(summary)
    meta = data.get("metadata") if data else None
    paths = meta.get("trace_paths") if isinstance(meta, dict) else None
    if not isinstance(paths, list):
        return []
    resolved = []
    for item in paths:
        if isinstance(item, str):
            try:
                resolved.append(Path(item).resolve())
            except OSError:
                continue
    return resolved
