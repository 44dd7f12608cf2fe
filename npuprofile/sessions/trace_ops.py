"""The op table of a capture's traces, read in a child process so the engine's process pays nothing for it.

Reading a profiler's op table in the engine's own process (``key_averages()``)
builds hundreds of thousands of Python objects: the garbage collector's pauses
and the interpreter lock then stall the engine's loop for up to a second even
from a background thread. A child process reads the exported trace instead
(:func:`npuprofile.analysis.summarize`: host ops, device kernels and
synchronizations, by self time) and hands back only the rows.

    python -m npuprofile.sessions.trace_ops TOP TRACE...
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterable

import orjson

from npuprofile.errors import TraceError
from npuprofile.summary.model import OpRow

__all__ = ["read_ops"]

_FIELDS = tuple(field.name for field in dataclasses.fields(OpRow))


def read_ops(paths: Iterable[Path], top: int = 20, timeout: float = 900.0) -> list[OpRow]:
    """The top ``top`` ops of each kind in the trace files ``paths``, read by a child process."""
    files = [str(path) for path in paths]
    if not files:
        return []
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    try:
        done = subprocess.run([sys.executable, "-m", __name__, str(top), *files], capture_output=True,
                              timeout=timeout, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TraceError(f"reading the op table of {files[0]} in a child process failed: {exc}") from exc
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
        raise TraceError(f"reading the op table of {files[0]} failed: {' '.join(tail) or done.returncode}")
    return [OpRow(**{key: row[key] for key in _FIELDS if key in row}) for row in orjson.loads(done.stdout)]


def main(argv: list[str]) -> int:
    from npuprofile.analysis import summarize

    top, *files = argv
    summary = summarize(files, top=int(top))
    sys.stdout.buffer.write(orjson.dumps([op.to_dict() for op in summary.ops]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
