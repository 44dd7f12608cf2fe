"""What the registered backends say their traces look like, compiled once for one analysis.

The analysis knows no device library or lane by name: every pattern below comes
from the backends' :class:`~npuprofile.backends.base.TraceLayout` (see
:func:`npuprofile.backends.trace_layouts`). Patterns are regular expressions,
matched case-insensitively with ``re.search``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Iterable, Sequence

from npuprofile.backends.base import TraceLayout

__all__ = ["TraceRules", "trace_rules", "ACTIVITY_MEMORY_CATEGORIES", "ACTIVITY_CATEGORIES", "MARKER_CATEGORIES"]

#: torch's categories of device work (and their 2021 spellings).
ACTIVITY_CATEGORIES = frozenset({"kernel", "gpu_memcpy", "gpu_memset", "Kernel", "Memcpy", "Memset"})
#: The ones among them that copy or set memory.
ACTIVITY_MEMORY_CATEGORIES = frozenset({"gpu_memcpy", "gpu_memset", "Memcpy", "Memset"})
#: Categories of annotations torch writes on device lanes (ranges, not work).
MARKER_CATEGORIES = frozenset({"gpu_user_annotation", "ac2g", "Trace"})


def _compile(patterns: Iterable[str]) -> re.Pattern[str] | None:
    joined = "|".join(f"(?:{p})" for p in patterns)
    return re.compile(joined, re.IGNORECASE) if joined else None


@dataclasses.dataclass(frozen=True)
class TraceRules:
    """The union of every backend's layout, compiled: which lane is what, which activity is which kind."""

    layouts: tuple[TraceLayout, ...]
    device: re.Pattern[str] | None
    derived: re.Pattern[str] | None
    communication: re.Pattern[str] | None
    memory: re.Pattern[str] | None
    sync: re.Pattern[str] | None
    #: process name -> the first name of its group (processes whose threads are the same OS threads).
    host_groups: dict[str, str]
    #: overlap-lane thread name -> figure (``compute``, ``communication``, ...).
    overlap_threads: dict[str, str]
    trace_globs: tuple[str, ...]
    rank_file_globs: tuple[str, ...]
    table_globs: tuple[str, ...]
    table_readers: tuple[tuple[tuple[str, ...], str], ...]

    def process_role(self, name: str, labels: str) -> str:
        """``"derived"`` (a view of other lanes), ``"device"`` or ``"host"`` for a process."""
        text = f"{name} {labels}".strip()
        if self.derived is not None and text and self.derived.search(text):
            return "derived"
        if self.device is not None and text and self.device.search(text):
            return "device"
        return "host"

    def activity_kind(self, name: str, category: str | None) -> str:
        """``"sync"``, ``"marker"``, ``"memory"``, ``"communication"`` or ``"compute"`` for a device-lane event."""
        if self.sync is not None and (self.sync.search(name) or (category and self.sync.search(category))):
            return "sync"
        if category in MARKER_CATEGORIES:
            return "marker"
        if category in ACTIVITY_MEMORY_CATEGORIES or (self.memory is not None and self.memory.search(name)):
            return "memory"
        if self.communication is not None and self.communication.search(name):
            return "communication"
        return "compute"


def trace_rules(layouts: Sequence[TraceLayout] | None = None) -> TraceRules:
    """Compile the layouts of every registered backend (or the ones given)."""
    if layouts is None:
        from npuprofile.backends import trace_layouts

        layouts = trace_layouts()
    layouts = tuple(layouts)
    groups: dict[str, str] = {}
    for layout in layouts:
        for group in layout.host_process_groups:
            for name in group:
                groups.setdefault(name, group[0])
    overlap: dict[str, str] = {}
    for layout in layouts:
        for thread, figure in layout.overlap_threads:
            overlap.setdefault(thread, figure)
    readers = tuple((layout.table_globs, layout.table_reader) for layout in layouts
                    if layout.table_reader and layout.table_globs)
    return TraceRules(
        layouts=layouts,
        device=_compile(p for layout in layouts for p in layout.device_process_patterns),
        derived=_compile(layout.overlap_process_pattern for layout in layouts if layout.overlap_process_pattern),
        communication=_compile(p for layout in layouts for p in layout.communication_patterns),
        memory=_compile(p for layout in layouts for p in layout.memory_patterns),
        sync=_compile(p for layout in layouts for p in layout.sync_marker_patterns),
        host_groups=groups,
        overlap_threads=overlap,
        trace_globs=_unique(g for layout in layouts for g in layout.trace_globs),
        rank_file_globs=_unique(layout.rank_file_glob for layout in layouts if layout.rank_file_glob),
        table_globs=_unique(g for layout in layouts for g in layout.table_globs),
        table_readers=readers,
    )


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
