"""Where a command's result goes: a regular file, written atomically, or standard output (``-o -``).

The target is checked before any work starts: an existing device, pipe,
socket or directory is refused with one line (writing there would replace the
node with a regular file); a symbolic link is followed to the file it names.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from npuprofile.errors import ConfigError
from npuprofile.sessions.files import atomic_write_text, regular_target

STDOUT = "-"


def check_output(value: str, option: str = "-o") -> Path | None:
    """The file ``value`` names (``None`` for standard output); refuses anything but a regular file."""
    if value == STDOUT:
        return None
    if value == "" or "\0" in value:
        raise ConfigError(f"{option} {value!r} is not a file name; allowed: a file name, or '-' for standard output")
    path = Path(value)
    try:
        regular_target(path)
    except ConfigError as exc:
        raise ConfigError(f"{option}: {exc}; use '-' for standard output") from None
    return path


def write_text(target: Path | None, text: str) -> None:
    """Write ``text`` to the file (atomically) or, for ``None``, to standard output."""
    if target is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        atomic_write_text(target, text)


def produce_into(target: Path | None, suffix: str, produce: Callable[[Path], Any]) -> Any:
    """``produce(path)`` on ``target``; for standard output, on a temporary file that is then copied there."""
    if target is not None:
        return produce(target)
    with tempfile.TemporaryDirectory(prefix="npuprofile-") as scratch:
        result = produce(Path(scratch) / f"output{suffix}")
        with open(Path(scratch) / f"output{suffix}", "rb") as source:
            shutil.copyfileobj(source, sys.stdout.buffer, 1 << 20)
        sys.stdout.flush()
    return result
