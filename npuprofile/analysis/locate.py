"""Finding the inputs of an analysis: trace files, the tables beside them, the files that name a rank.

Everything is looked for with the patterns the registered backends' trace
layouts give (:mod:`.layouts`), at any depth under a directory. A file that a
layout names specifically (``*.pt.trace.json``, ``trace_view.json``) is always
taken; one that only a generic pattern matches (``*.json``) is taken when its
first bytes look like a trace, so summaries, rank files and other JSON beside the
traces are left alone. A Git LFS pointer in place of a trace is reported as such.
"""

from __future__ import annotations

import fnmatch
import gzip
import json
import logging
import os
import re
import zlib
from pathlib import Path

from npuprofile.analysis.layouts import TraceRules, trace_rules
from npuprofile.errors import TraceError

__all__ = ["find_traces", "find_tables", "rank_from_files", "lfs_pointer"]

logger = logging.getLogger("npuprofile")

_SNIFF_BYTES = 256 << 10
_LFS_MAGIC = b"version https://git-lfs.github.com/spec/"
_LFS_MAX_BYTES = 1024
_SUMMARY_SUFFIXES = ("summary.json", "summary.json.gz")
_RANK_SEARCH_LEVELS = 2
_DIGITS = re.compile(r"(\d+)(?!.*\d)")


def lfs_pointer(path: Path) -> str | None:
    """A one-line description when ``path`` is a Git LFS pointer file instead of its content, else None."""
    try:
        if path.stat().st_size > _LFS_MAX_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if not data.startswith(_LFS_MAGIC):
        return None
    fields = dict(line.split(" ", 1) for line in data.decode("utf-8", "replace").splitlines() if " " in line)
    size = fields.get("size", "?")
    return (f"{path}: a Git LFS pointer file (the real file, {size} bytes, was never downloaded); "
            "fetch it with 'git lfs pull' and try again")


def _named(pattern: str) -> bool:
    """Whether a glob names files specifically (``*.pt.trace.json``), not just by extension (``*.json``)."""
    tail = pattern.rsplit("/", 1)[-1]
    return tail.lstrip("*") not in (".json", ".json.gz", ".gz", "")


def _sniff(path: Path) -> bool | None:
    """True if the file starts like a trace, False if it does not, None if it cannot be read."""
    try:
        with open(path, "rb") as raw:
            magic = raw.read(2)
            raw.seek(0)
            handle = gzip.GzipFile(fileobj=raw) if magic == b"\x1f\x8b" else raw
            head = handle.read(_SNIFF_BYTES)
    except (OSError, EOFError, zlib.error):
        return None
    head = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"{"):
        return b'"traceEvents"' in head
    if head.startswith(b"["):
        return b'"ph"' in head[:4096] or head[1:].lstrip(b" \t\r\n").startswith(b"]")
    return False


def _excluded(path: Path, rules: TraceRules) -> bool:
    name = path.name
    if name.startswith(".") or name.endswith(_SUMMARY_SUFFIXES):
        return True
    return any(fnmatch.fnmatch(name, glob) for glob in rules.rank_file_globs)


def find_traces(path: str | os.PathLike[str], rules: TraceRules | None = None) -> list[Path]:
    """The trace files ``path`` names: itself if a file, else the traces found under the directory."""
    root = Path(path)
    rules = rules if rules is not None else trace_rules()
    if root.is_file():
        pointer = lfs_pointer(root)
        if pointer:
            raise TraceError(pointer)
        return [root]
    if not root.exists():
        raise TraceError(f"{root}: no such file or directory")
    if not root.is_dir():
        raise TraceError(f"{root}: not a file or directory")
    found, pointers = _scan(root, rules)
    for pointer in pointers:
        logger.warning("npuprofile: skipping %s", pointer)
    if not found:
        if pointers:
            raise TraceError(pointers[0] if len(pointers) == 1 else
                             f"{root}: every trace found is a Git LFS pointer file ({len(pointers)}), "
                             "not the trace itself; fetch them with 'git lfs pull'")
        raise TraceError(f"{root}: no trace files found (looked for {', '.join(rules.trace_globs)})")
    return found


def _scan(root: Path, rules: TraceRules) -> tuple[list[Path], list[str]]:
    named: set[Path] = set()
    generic: set[Path] = set()
    for pattern in rules.trace_globs:
        target = named if _named(pattern) else generic
        for candidate in root.rglob(pattern):
            if candidate.is_file() and not _excluded(candidate, rules):
                target.add(candidate)
    found: list[Path] = []
    pointers: list[str] = []
    for candidate in sorted(named | generic):
        pointer = lfs_pointer(candidate)
        if pointer:
            pointers.append(pointer)
        elif candidate in named or _sniff(candidate) is not False:
            found.append(candidate)
    return found, pointers


def find_tables(path: str | os.PathLike[str], rules: TraceRules | None = None) -> list[Path]:
    """The backend tables (``rules.table_globs``) ``path`` is or holds, at any depth."""
    root = Path(path)
    rules = rules if rules is not None else trace_rules()
    if root.is_file():
        return [root] if any(fnmatch.fnmatch(root.name, glob) for glob in rules.table_globs) else []
    if not root.is_dir():
        return []
    found = {c for glob in rules.table_globs for c in root.rglob(glob) if c.is_file() and not c.name.startswith(".")}
    return sorted(found)


def rank_from_files(trace: Path, rules: TraceRules | None = None) -> int | None:
    """The rank a file beside the trace (or one directory up) names, from the layouts' ``rank_file_glob``.

    The file's ``rank_id`` key wins; else the last number in its name.
    """
    rules = rules if rules is not None else trace_rules()
    if not rules.rank_file_globs:
        return None
    directory = trace.resolve().parent
    for _ in range(_RANK_SEARCH_LEVELS):
        for glob in rules.rank_file_globs:
            for candidate in sorted(directory.glob(glob)):
                rank = _rank_in(candidate)
                if rank is not None:
                    return rank
        directory = directory.parent
    return None


def _rank_in(path: Path) -> int | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if isinstance(data, dict):
        rank = data.get("rank_id")
        if isinstance(rank, int) and not isinstance(rank, bool) and rank >= 0:
            return rank
    match = _DIGITS.search(path.stem)
    return int(match.group(1)) if match else None
