"""Run facts for a trace: the session summary npuprofile wrote next to it, and the trace's own metadata.

Summaries are found through a :class:`SummaryIndex`, which lists each
directory once and reads each ``*.summary.json`` once, however many traces
share the directory (a directory of N sessions costs N reads, not N x N).

A session summary is a file like any other: one that is too large, not JSON,
nested too deeply or not an object is ignored with one warning; metadata
fields of the wrong type are dropped, named in one warning, so reports only
see values of the documented types.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Callable

logger = logging.getLogger("npuprofile")

SUMMARY_SUFFIX = ".summary.json"
#: Top-level trace keys worth carrying into a report (small ones only).
TRACE_KEYS = ("schemaVersion", "distributedInfo", "deviceProperties", "trace_id", "host_name",
              "baseTimeNanoseconds", "displayTimeUnit", "record_shapes", "cupti_version", "cuda_runtime_version",
              "cuda_driver_version", "hip_runtime_version", "with_stack", "profile_memory")
#: Session summaries larger than this are not ours (ours are a few KB to a few MB; JSON text can take
#: 20 times its size as Python objects).
MAX_SUMMARY_BYTES = 16 << 20
_SEARCH_LEVELS = 3
_LATEST_TIMESTAMP = 1e11  # seconds since the epoch: the year 5138


def _is_count(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63)


def _is_timestamp(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                             and math.isfinite(value) and 0 <= value <= _LATEST_TIMESTAMP)


def _is_text(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _is_text_list(value: Any) -> bool:
    return value is None or (isinstance(value, list) and all(isinstance(item, str) for item in value))


def _is_mapping(value: Any) -> bool:
    return value is None or isinstance(value, dict)


#: The metadata fields of a session summary and the check each value must pass (``None`` always does).
METADATA_FIELDS: dict[str, Callable[[Any], bool]] = {
    "backend": _is_text, "run_id": _is_text, "rank": _is_count, "world_size": _is_count, "host": _is_text,
    "pid": _is_count, "started_at": _is_timestamp, "stopped_at": _is_timestamp, "steps": _is_count,
    "warmup_steps": _is_count, "stage": _is_text, "coords": _is_mapping, "options": _is_mapping,
    "backend_options": _is_mapping, "versions": _is_mapping, "trace_paths": _is_text_list,
    "degraded": _is_text_list, "compiled_regions": _is_text_list, "compiled_regions_where": _is_mapping,
}


class SummaryIndex:
    """The session summaries of the directories a set of traces lives in, each directory listed and each
    summary read once."""

    def __init__(self) -> None:
        self._listed: dict[Path, list[Path]] = {}
        self._loaded: dict[Path, dict[str, Any] | None] = {}
        self._by_trace: dict[Path, list[Path]] = {}  # a listed trace (or folder) -> the summaries listing it

    def find(self, trace: Path) -> Path | None:
        """The ``<stem>.summary.json`` of the session that wrote ``trace``, if one is near it.

        Looks in the trace's directory and a few parents (torch_npu nests traces
        inside ``*_ascend_pt/ASCEND_PROFILER_OUTPUT``). A summary that lists the
        trace (or a folder holding it) in ``trace_paths`` wins; otherwise one whose
        stem starts the trace's file name.
        """
        trace = trace.resolve()
        directory = trace.parent
        for _ in range(_SEARCH_LEVELS):
            candidates = self._summaries_in(directory)
            listing = [summary for folder in (trace, *trace.parents) for summary in self._by_trace.get(folder, ())
                       if summary.parent == directory]
            if listing:
                return min(listing)  # the first in name order, as the directory lists them
            for candidate in candidates:
                stem = candidate.name[: -len(SUMMARY_SUFFIX)]
                if trace.name.startswith(stem + "."):
                    return candidate
            if directory.parent == directory:
                break
            directory = directory.parent
        return None

    def load(self, path: Path) -> dict[str, Any] | None:
        """The (checked) JSON of a session summary, read once."""
        if path not in self._loaded:
            self._loaded[path] = load_session_summary(path)
        return self._loaded[path]

    def _summaries_in(self, directory: Path) -> list[Path]:
        listed = self._listed.get(directory)
        if listed is None:
            try:
                names = sorted(os.listdir(directory))
            except OSError:
                names = []
            listed = self._listed[directory] = [directory / n for n in names
                                                if n.endswith(SUMMARY_SUFFIX) and not n.startswith(".")]
            for candidate in listed:
                for path in _trace_paths(self.load(candidate)):
                    self._by_trace.setdefault(path, []).append(candidate)
        return listed


def find_session_summary(trace: Path) -> Path | None:
    """The session summary of ``trace`` (see :meth:`SummaryIndex.find`); for many traces, share one index."""
    return SummaryIndex().find(trace)


def load_session_summary(path: Path) -> dict[str, Any] | None:
    """The JSON of a session summary with its metadata checked, or None (with a log line) when unreadable."""
    try:
        if path.stat().st_size > MAX_SUMMARY_BYTES:
            raise ValueError(f"larger than {MAX_SUMMARY_BYTES >> 20} MB")
        with open(path, "rb") as handle:
            data = json.loads(handle.read())  # NaN and Infinity read as floats, then refused by the checks
    except (OSError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).splitlines()[0][:200]
        logger.warning("npuprofile: ignoring unreadable session summary %s: %s", path, reason)
        return None
    if not isinstance(data, dict):
        logger.warning("npuprofile: ignoring session summary %s: a JSON %s, not an object", path, type(data).__name__)
        return None
    return _checked(path, data)


def _checked(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """Drop fields of the wrong type, naming them in one warning."""
    dropped = []
    meta = data.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        dropped.append(f"metadata={_shown(meta)}")
        data = {k: v for k, v in data.items() if k != "metadata"}
    elif isinstance(meta, dict):
        clean = {}
        for key, value in meta.items():
            check = METADATA_FIELDS.get(key)
            if check is not None and not check(value):
                dropped.append(f"{key}={_shown(value)}")
            else:
                clean[key] = value
        data = dict(data, metadata=clean)
    regions = data.get("regions")
    if regions is not None and not (isinstance(regions, list) and all(isinstance(r, dict) for r in regions)):
        dropped.append(f"regions={_shown(regions)}")
        data = {k: v for k, v in data.items() if k != "regions"}
    if dropped:
        logger.warning("npuprofile: session summary %s: ignoring field(s) of the wrong type: %s", path,
                       ", ".join(dropped))
    return data


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def trace_facts(metadata: dict[str, Any]) -> dict[str, Any]:
    """The small, useful top-level keys of a trace."""
    return {key: metadata[key] for key in TRACE_KEYS if key in metadata}


def rank_of(trace_metadata: dict[str, Any], session_metadata: dict[str, Any] | None) -> int | None:
    """The rank a trace belongs to: from the session summary, else torch's ``distributedInfo``."""
    rank = session_metadata.get("rank") if session_metadata else None
    if isinstance(rank, int) and _is_count(rank):
        return rank
    info = trace_metadata.get("distributedInfo")
    rank = info.get("rank") if isinstance(info, dict) else None
    return rank if isinstance(rank, int) and _is_count(rank) else None


def _trace_paths(data: dict[str, Any] | None) -> list[Path]:
    meta = data.get("metadata") if data else None
    paths = meta.get("trace_paths") if isinstance(meta, dict) else None
    if not isinstance(paths, list):
        return []
    resolved = []
    for item in paths:
        if isinstance(item, str) and "\0" not in item:
            try:
                resolved.append(Path(item).resolve())
            except (OSError, RuntimeError, ValueError):
                continue
    return resolved
