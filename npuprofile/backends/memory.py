"""Allocator history for ``memory_snapshot=True``: PyTorch's caching-allocator API, per device module.

``torch.cuda.memory`` and ``torch_npu.npu.memory`` offer the same private
functions: ``_record_memory_history(enabled, max_entries=...)`` to start and
stop recording, and ``_snapshot()`` for the allocator's state plus the
recorded history (what PyTorch's memory viewer reads, pickled).
"""

from __future__ import annotations

from typing import Any

from npuprofile.backends.base import MemoryHistory

__all__ = ["MAX_ENTRIES", "AllocatorHistory"]

#: Allocation and free events kept (the oldest are dropped beyond this).
MAX_ENTRIES = 100_000


class AllocatorHistory(MemoryHistory):
    """The allocator history of one device module (``torch.cuda.memory``, ``torch_npu.npu.memory``)."""

    def __init__(self, module: Any, max_entries: int = MAX_ENTRIES) -> None:
        self.module = module
        self.max_entries = max_entries

    def start(self) -> None:
        self.module._record_memory_history(enabled="all", max_entries=self.max_entries)

    def snapshot(self) -> Any:
        return self.module._snapshot()

    def stop(self) -> None:
        self.module._record_memory_history(enabled=None)
