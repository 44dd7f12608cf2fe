"""Where a session's files go, and how they are written: atomically, with safe names.

A reader never sees a half-written file: everything is written to a temporary
name in the same directory and renamed into place. Files get the user's umask.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import socket
import stat
import threading
import time
from pathlib import Path
from typing import Callable

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


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

    def __init__(self, directory: Path, stem: str, gzip: bool = False) -> None:
        self.directory = directory
        self.stem = stem
        self.gzip = gzip
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

    def write(self, suffix: str, write: Callable[[Path], None], *, compress: bool | None = None) -> Path:
        """Write a new file atomically through ``write`` and record it."""
        path = self.new_path(suffix)
        atomic_write(path, write, compress=self.gzip if compress is None else compress)
        self.add(path)
        return path


def default_stem(run_id: str, rank: int) -> str:
    """The file-name stem of one process: ``<run_id>.rank<rank>.<host>_<pid>``."""
    return f"{safe_name(run_id)}.rank{rank}.{safe_name(socket.gethostname(), 60)}_{os.getpid()}"
