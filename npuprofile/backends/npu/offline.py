"""Offline analysis of NPU profiling directories recorded with ``analyse=False``.

``npuprofile analyze DIR`` calls :func:`analyze_traces`: it runs torch_npu's
own analysis on each ``*_ascend_pt`` directory and returns the analysed traces.
This needs torch_npu and the CANN libraries, not an NPU.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from npuprofile.backends.npu.api import describe_import_error
from npuprofile.backends.npu.layout import DIR_SUFFIX, OUTPUT_DIR, TRACE_VIEW
from npuprofile.errors import BackendUnavailableError, ConfigError, TraceError

__all__ = ["analysed_outputs", "analyze_traces", "profiling_dirs"]


def analysed_outputs(directory: Path) -> list[Path]:
    """The analysed traces inside one profiling directory (``trace_view.json``, ``*.db``), if any."""
    output = directory / OUTPUT_DIR
    if not output.is_dir():
        return []
    found = [output / TRACE_VIEW] if (output / TRACE_VIEW).is_file() else []
    return found + sorted(output.glob("*.db"))


def profiling_dirs(path: Path) -> list[Path]:
    """``path`` itself when it is a torch_npu profiling directory, else the ones directly inside it."""
    if not path.exists():
        raise FileNotFoundError(f"{str(path)!r} does not exist")
    if not path.is_dir():
        raise TraceError(f"{str(path)!r} is not a directory; allowed: a *{DIR_SUFFIX} directory or its parent")
    if path.name.endswith(DIR_SUFFIX):
        return [path]
    found = sorted(child for child in path.iterdir() if child.is_dir() and child.name.endswith(DIR_SUFFIX))
    if not found:
        raise TraceError(f"no *{DIR_SUFFIX} directory in {str(path)!r}; allowed: a directory torch_npu profiled into")
    return found


def analyze_traces(path: str | Path, *, max_process_number: int | None = None) -> list[Path]:
    """Run torch_npu's offline analysis on profiling directories recorded with ``analyse=False``.

    ``path`` is one ``*_ascend_pt`` directory or a directory holding several;
    ``max_process_number`` bounds torch_npu's worker processes (default: its
    own choice). Returns the analysed outputs (``trace_view.json`` or ``*.db``)
    found afterwards. Raises :class:`BackendUnavailableError` when torch_npu
    cannot be imported.
    """
    if max_process_number is not None and (
        isinstance(max_process_number, bool) or not isinstance(max_process_number, int) or max_process_number < 1
    ):
        raise ConfigError(f"max_process_number={max_process_number!r} is not allowed; allowed: a whole number >= 1")
    directories = profiling_dirs(Path(path))
    try:
        analyse = importlib.import_module("torch_npu.profiler.profiler").analyse
    except Exception as exc:
        raise BackendUnavailableError(
            f"analysing NPU traces needs torch_npu: {describe_import_error(exc)}"
        ) from exc
    outputs: list[Path] = []
    for directory in directories:
        kwargs: dict[str, Any] = {"profiler_path": str(directory)}
        if max_process_number is not None:
            kwargs["max_process_number"] = max_process_number
        analyse(**kwargs)
        found = analysed_outputs(directory)
        if not found:
            raise TraceError(f"torch_npu analysed {str(directory)!r} but wrote no {OUTPUT_DIR}/{TRACE_VIEW} or .db")
        outputs.extend(found)
    return outputs
