"""atomic_write: what a write replaces (links followed, non-regular files refused) and what it leaves."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from npuprofile.errors import ConfigError
from npuprofile.sessions.files import atomic_write, atomic_write_text


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_a_link_to_a_file_replaces_the_file_and_keeps_the_link(tmp_path: Path) -> None:
    target = tmp_path / "real.txt"
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    atomic_write_text(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    assert names(tmp_path) == ["link.txt", "real.txt"]


def test_a_dangling_link_creates_the_file_it_names(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "link.txt"
    link.symlink_to(tmp_path / "elsewhere" / "made.txt")
    atomic_write_text(link, "made")
    assert link.is_symlink() and (tmp_path / "elsewhere" / "made.txt").read_text() == "made"


def test_a_link_to_a_device_is_refused_and_the_device_kept(tmp_path: Path) -> None:
    link = tmp_path / "null"
    link.symlink_to("/dev/null")
    before = os.stat("/dev/null")
    with pytest.raises(ConfigError, match="a character device, not a regular file"):
        atomic_write_text(link, "x")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    assert names(tmp_path) == ["null"]


def test_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        atomic_write_text(tmp_path / "out", "x")


def test_a_linked_parent_directory_is_written_through(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "via").symlink_to(real)
    atomic_write_text(tmp_path / "via" / "deep" / "file.txt", "through")
    assert (real / "deep" / "file.txt").read_text() == "through"
    assert names(real / "deep") == ["file.txt"]  # no temporary file left


def test_a_writer_that_writes_nothing_fails_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="the writer produced no file"):
        atomic_write(tmp_path / "none.json", lambda tmp: None)
    assert names(tmp_path) == []


def test_a_failing_writer_leaves_the_old_file_and_no_partial_one(tmp_path: Path) -> None:
    path = tmp_path / "kept.txt"
    path.write_text("old")

    def write(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        atomic_write(path, write)
    assert path.read_text() == "old" and names(tmp_path) == ["kept.txt"]


def test_written_files_are_never_world_writable(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        atomic_write(tmp_path / "b.txt.gz", lambda tmp: tmp.write_bytes(b"y"), compress=True)
    finally:
        os.umask(old)
    for name in ("a.txt", "b.txt.gz"):
        assert not stat.S_IMODE((tmp_path / name).stat().st_mode) & stat.S_IWOTH, name
