"""Where a session's files go, and how they are written: atomically, with safe names.

A reader never sees a half-written file: everything is written to a temporary
name in the same directory and renamed into place. Files get the user's umask.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import socket
import stat
import threading
import time
from pathlib import Path
from typing import Callable

from npuprofile.sessions.coords import Coords, format_coords

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
#: The longest file stem: what is added after it (``.<time_ns>.pt.trace.json.gz``, torch_npu's
#: ``_<pid>_<time>_ascend_pt``) keeps every name within the 255 bytes file systems allow.
STEM_MAX = 180
#: A run id shortened to fit a stem keeps at least this many characters (plus a hash of the whole id).
_RUN_MIN = 24


def safe_name(text: str, limit: int = 120) -> str:
    """A file-name component from user text: no separators, no leading dots, bounded length."""
    cleaned = _UNSAFE.sub("_", text).strip("._") or "_"
    return cleaned[:limit]


def make_dirs(path: Path) -> Path:
    """Create ``path`` and missing parents, never world-writable (whatever the umask)."""
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o775)
        except FileExistsError:
            continue
        _drop_world_write(directory)
    return path


def _drop_world_write(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & stat.S_IWOTH:
        os.chmod(path, mode & ~stat.S_IWOTH)


def _temporary_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def atomic_write(path: Path, write: Callable[[Path], None], *, compress: bool = False) -> Path:
    """Write ``path`` through ``write(temporary_path)``, optionally gzip it, then rename into place.

    On any failure the temporary file is removed and ``path`` is left as it was.
    """
    make_dirs(path.parent)
    tmp = _temporary_path(path)
    packed = tmp.with_name(tmp.name + ".gz")
    try:
        write(tmp)
        _drop_world_write(tmp)
        if compress:
            with open(tmp, "rb") as src, gzip.open(packed, "wb", compresslevel=6) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            _drop_world_write(packed)
            os.replace(packed, path)
            tmp.unlink()
        else:
            os.replace(tmp, path)
    finally:
        for leftover in (tmp, packed):
            if leftover.exists():
                leftover.unlink()
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """Write a text file atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)

    return atomic_write(path, write)


class TraceSink:
    """Names and records the files one session writes into its output directory.

    ``stem`` identifies the writer (run id, rank, host, pid) so files of many
    processes can share a directory without clashing.
    """

    def __init__(self, directory: Path, stem: str, gzip: bool = False, *, defer: bool = False) -> None:
        self.directory = directory
        self.stem = stem
        self.gzip = gzip
        #: Whether slow work on the written files (compression, analysis) waits for ``Trace.finish()``,
        #: which may run on another thread, instead of running inside the profiler's stop.
        self.defer = defer
        self.paths: list[Path] = []
        self._lock = threading.Lock()

    def new_path(self, suffix: str) -> Path:
        """A fresh path ``<dir>/<stem>.<time_ns><suffix>`` that does not exist yet."""
        make_dirs(self.directory)
        while True:
            candidate = self.directory / f"{self.stem}.{time.time_ns()}{suffix}"
            if not candidate.exists():
                return candidate

    def add(self, path: Path) -> None:
        """Record a file this session produced."""
        with self._lock:
            if path not in self.paths:
                self.paths.append(path)

    def replace(self, old: Path, new: Path) -> None:
        """Record that ``old`` became ``new`` (compressed, moved)."""
        with self._lock:
            self.paths = [new if path == old else path for path in self.paths]

    def write(self, suffix: str, write: Callable[[Path], None], *, compress: bool | None = None) -> Path:
        """Write a new file atomically through ``write`` and record it."""
        path = self.new_path(suffix)
        atomic_write(path, write, compress=self.gzip if compress is None else compress)
        self.add(path)
        return path


def gzip_file(path: Path) -> Path:
    """Compress ``path`` into ``<path>.gz`` atomically and remove ``path``; return the new path."""
    packed = path.with_name(path.name + ".gz")

    def write(tmp: Path) -> None:
        with open(path, "rb") as src, gzip.open(tmp, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)

    atomic_write(packed, write)
    path.unlink()
    return packed


def default_stem(run_id: str, rank: int, coords: Coords | None = None, stage: str | None = None) -> str:
    """The file-name stem of one process: ``<run_id>.rank<rank>[.<coords>][.<stage>].<host>_<pid>``.

    Dots separate the fields, so the host name's dots become ``-``. A stem
    longer than :data:`STEM_MAX` shortens the run id to its start plus a hash
    of the whole id (the same on every rank), then the host name.
    """
    host = safe_name(socket.gethostname(), 60).replace(".", "-")
    middle = "".join(f".{part}" for part in (format_coords(coords), stage) if part)
    tail = f".rank{rank}{middle}.{host}_{os.getpid()}"
    run = safe_name(run_id, 200)
    if len(run) + len(tail) > STEM_MAX:
        digest = hashlib.sha1(run.encode("utf-8")).hexdigest()[:8]
        keep = max(_RUN_MIN, STEM_MAX - len(tail) - len(digest) - 1)
        run = f"{run[:keep].rstrip('._-')}-{digest}"
    stem = run + tail
    if len(stem) > STEM_MAX:
        over = len(stem) - STEM_MAX
        stem = f"{run}.rank{rank}{middle}.{host[: max(1, len(host) - over)]}_{os.getpid()}"
    return stem
