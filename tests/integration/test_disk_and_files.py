"""Disks and files: a full disk during export, ``-o`` onto things that are not regular files."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]

FULL_DISK_JOB = textwrap.dedent(
    """
    import logging, sys
    logging.basicConfig(level=logging.WARNING)
    import torch
    import npuprofile as npp
    out, gzip = sys.argv[1], sys.argv[2] == "gzip"
    with npp.session(output_dir=out, gzip=gzip) as s:
        x = torch.ones(16, 16)
        for _ in range(1500):
            with npp.profile_region("work"):
                x = (x @ x).clamp(-1, 1)
    print("degraded", len(s.degraded))
    """
)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 192 KB tmpfs (needs root: mounting is what makes a real ENOSPC)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; the full-disk case runs only as root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k,mode=0755", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def run_full_disk_job(out: Path, compress: bool) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", FULL_DISK_JOB, str(out), "gzip" if compress else "plain"],
                          env=env, capture_output=True, text=True, timeout=300)


def ours(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


@pytest.mark.parametrize("compress", [False, True])
def test_a_full_disk_leaves_no_partial_file_and_the_summary_is_still_written(small_disk, compress) -> None:
    out = small_disk / "out"
    result = run_full_disk_job(out, compress)
    assert result.returncode == 0, result.stderr[-3000:]  # the workload never sees the failure
    names = ours(out)
    assert [n for n in names if ".tmp" in n or n.startswith(".")] == [], names  # ours and the profiler's
    assert [n for n in names if ".pt.trace.json" in n] == [], names  # nothing a later run would read as a trace
    summary = next(out.glob("*.summary.json"))
    saved = json.loads(summary.read_text())
    assert saved["regions"][0]["count"] == 1500
    assert any("No space" in d or "write trace" in d for d in saved["metadata"]["degraded"])


def test_a_disk_with_no_room_even_for_the_summary_keeps_nothing_partial(small_disk) -> None:
    out = small_disk / "out"
    out.mkdir()
    filler = small_disk / "filler"
    with open(filler, "wb", buffering=0) as handle:  # take every block
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass
    result = run_full_disk_job(out, compress=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert ours(out) == []  # the summary was attempted, failed, and left nothing behind
    assert "write summary failed" in result.stderr and "No space left" in result.stderr


# -- -o onto things that are not regular files ------------------------------------------------
@pytest.fixture
def trace(tmp_path: Path) -> Path:
    path = tmp_path / "run.rank0.host_1.5.pt.trace.json"
    event = {"ph": "X", "name": "aten::mm", "cat": "cpu_op", "ts": 1.0, "dur": 2.0, "pid": 1, "tid": 1}
    path.write_text(json.dumps({"traceEvents": [event]}))
    return path


def special_files(tmp_path: Path) -> dict[str, Path]:
    nodes = {"directory": tmp_path / "a-directory", "named pipe": tmp_path / "a-fifo"}
    nodes["directory"].mkdir()
    os.mkfifo(nodes["named pipe"])
    sock = tmp_path / "a-socket"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock))
    nodes["socket"] = sock
    if os.geteuid() == 0:  # a private copy of /dev/null: the real one is never at stake
        device = tmp_path / "null-device"
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        nodes["character device"] = device
    return nodes


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "npuprofile", *args], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))


@pytest.mark.parametrize("command", ["summarize", "report", "merge"])
def test_output_onto_a_non_regular_file_is_refused_and_the_node_kept(tmp_path, trace, command) -> None:
    for kind, node in special_files(tmp_path).items():
        before = os.lstat(node)
        result = cli(command, str(trace), "-o", str(node), "-q")
        assert result.returncode == 2, (kind, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and kind in lines[0] and "regular file" in lines[0], lines
        after = os.lstat(node)
        assert (after.st_mode, after.st_ino, after.st_rdev) == (before.st_mode, before.st_ino, before.st_rdev)


@pytest.mark.parametrize("command, marker", [("summarize", "aten::mm"), ("report", "<html"), ("merge", "traceEvents")])
def test_output_dash_is_standard_output(tmp_path, trace, command, marker) -> None:
    result = cli(command, str(trace), "-o", "-", "-q")
    assert result.returncode == 0, result.stderr
    assert marker in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [trace.name]  # no file named '-'


def test_output_through_a_symbolic_link_writes_the_file_it_names(tmp_path, trace) -> None:
    target = tmp_path / "real.txt"
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    result = cli("summarize", str(trace), "-o", str(link), "-q")
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and "aten::mm" in target.read_text()
