"""Where a session's files go, and how they are written: atomically, with safe names.

A reader never sees a half-written file: everything is written to a temporary
name in the same directory and renamed into place. Files get the user's umask.
A failed write leaves nothing behind: the temporary file and anything a writer
derived from its name (the profiler writes ``<temporary>.tmp`` first) are
removed, and so are the temporary files of writes still in progress when the
process is ended by a signal (:func:`remove_partial_files`). Only regular
files are written: an existing target that is a device, a pipe, a socket or a
directory is refused (a symbolic link is followed to the file it names).
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

from npuprofile.errors import ConfigError
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


def _drop_world_write(path: Path, mode: int | None = None) -> None:
    mode = stat.S_IMODE(path.stat().st_mode if mode is None else mode)
    if mode & stat.S_IWOTH:
        os.chmod(path, mode & ~stat.S_IWOTH)


def _temporary_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


#: Temporary files being written right now (removed by :func:`remove_partial_files` on the way out).
_IN_FLIGHT: set[Path] = set()


def regular_target(path: Path) -> Path:
    """The file a write to ``path`` replaces: ``path`` itself, or what a symbolic link points to.

    Raises :class:`~npuprofile.errors.ConfigError` when it exists and is not a
    regular file (a device such as ``/dev/null``, a pipe, a socket, a directory).
    """
    target = path
    try:
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):  # only the last component matters: a linked directory is written through
            target = Path(os.path.realpath(path))
            mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write ({exc.strerror or exc}); allowed: a regular file") from None
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{path} is {_kind(mode)}, not a regular file; allowed: a regular file or a new name")
    return target


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def atomic_write(path: Path, write: Callable[[Path], None], *, compress: bool = False) -> Path:
    """Write ``path`` through ``write(temporary_path)``, optionally gzip it, then rename into place.

    On any failure every partial file is removed and ``path`` is left as it
    was; a writer that reports its failure instead of raising (torch's trace
    export logs it) is caught by the missing temporary file.
    """
    target = regular_target(Path(path))
    make_dirs(target.parent)
    tmp = _temporary_path(target)
    _IN_FLIGHT.add(tmp)
    done = False
    try:
        write(tmp)
        try:
            mode = os.stat(tmp).st_mode
        except FileNotFoundError:
            raise OSError(f"{target.name}: the writer produced no file ({_free_space(target.parent)})") from None
        _drop_world_write(tmp, mode)
        if compress:
            packed = tmp.with_name(tmp.name + ".gz")
            with open(tmp, "rb") as src, gzip.open(packed, "wb", compresslevel=6) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            _drop_world_write(packed)
            os.replace(packed, target)
            tmp.unlink()
        else:
            os.replace(tmp, target)
        done = True
    finally:
        _IN_FLIGHT.discard(tmp)
        if not done:
            _remove_partial(tmp)
    return path


def _free_space(directory: Path) -> str:
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return "free space unknown"
    return "No space left on device" if free == 0 else f"{free} bytes free on its disk"


def _remove_partial(tmp: Path) -> None:
    """Remove ``tmp`` and every file whose name starts with it (``.gz``, the profiler's ``.tmp``)."""
    try:
        names = os.listdir(tmp.parent)
    except OSError:
        return
    for name in names:
        if name.startswith(tmp.name):
            try:
                os.unlink(tmp.parent / name)
            except OSError:
                pass


def remove_partial_files() -> None:
    """Remove the temporary files of writes still in progress (the process is about to end)."""
    for tmp in list(_IN_FLIGHT):
        _remove_partial(tmp)


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
        """A fresh path ``<dir>/<stem>.<time_ns><suffix>`` that does not exist yet (its directory is made on writing)."""
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
