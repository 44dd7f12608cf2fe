"""Records grouped by lane and handed back per lane in sorted order, in bounded memory.

Profilers do not write a thread's events in start order: torch writes every CPU
op of a thread first and the runtime calls of that same thread tens of thousands
of events later. Exact nesting needs each lane as if fully sorted, so records
(small tuples) collect in one buffer per lane; when all buffers together hold
``budget`` records, every buffer is sorted and written to one temporary file as
a run, and the buffers are emptied. :meth:`LaneSorter.sorted` then merges a
lane's runs with what is still in memory. Memory is bounded by the budget plus
one block per run being merged, and at most :data:`FAN_IN` runs are merged at
once: a lane with more overlapping runs (a thread written in reverse order, or
far out of order, in a large trace) has them merged into longer runs on disk
first, :data:`FAN_IN` at a time. A trace under the budget never touches the disk.
"""

from __future__ import annotations

import heapq
import itertools
import pickle
import tempfile
from typing import IO, Any, Iterator

__all__ = ["LaneSorter", "BUDGET", "FAN_IN"]

#: Records held in memory (all lanes together) before sorted runs are written to disk.
BUDGET = 200_000
#: The most runs merged at once (each holds one block of records in memory while merged).
FAN_IN = 32
_BLOCK = 4096


class _Run:
    """One sorted run of one lane on disk: where its blocks are, and its first and last record."""

    __slots__ = ("blocks", "first", "last")

    def __init__(self, blocks: list[tuple[int, int]], first: Any, last: Any) -> None:
        self.blocks = blocks
        self.first = first
        self.last = last


class LaneSorter:
    """Buffers of records per lane key; :meth:`sorted` gives a lane's records in order.

    Records must be tuples that never compare equal (end them with a sequence
    number). :meth:`buffer` hands out the lane's list so the hot loop can append
    to it directly; call :meth:`check` now and then to keep memory bounded.
    """

    def __init__(self, budget: int = BUDGET) -> None:
        self.budget = budget
        self.buffers: dict[Any, list[Any]] = {}
        self.runs: dict[Any, list[_Run]] = {}
        self.spills = 0
        self.spilled_records = 0
        #: Runs written by merging other runs (a lane with more than ``FAN_IN`` overlapping ones).
        self.merged_runs = 0
        self._file: IO[bytes] | None = None

    def buffer(self, key: Any) -> list[Any]:
        """The in-memory list of ``key``'s records (created on first use)."""
        found = self.buffers.get(key)
        if found is None:
            found = self.buffers[key] = []
        return found

    def check(self) -> None:
        """Spill every buffer to disk when all of them together hold ``budget`` records or more."""
        if sum(len(b) for b in self.buffers.values()) >= self.budget:
            self.spill()

    def spill(self) -> None:
        """Write each non-empty buffer as a sorted run and empty it (the lists keep their identity)."""
        for key, records in self.buffers.items():
            if not records:
                continue
            records.sort()
            self.runs.setdefault(key, []).append(
                self._write(records[start:start + _BLOCK] for start in range(0, len(records), _BLOCK)))
            self.spilled_records += len(records)
            del records[:]
        self.spills += 1

    def _write(self, blocks: Iterator[list[Any]]) -> _Run:
        """Append sorted records, given block by block, to the temporary file as one run."""
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="npuprofile-sort-")
        handle = self._file
        where: list[tuple[int, int]] = []
        first: Any = None
        last: Any = None
        for block in blocks:
            if first is None:
                first = block[0]
            last = block[-1]
            data = pickle.dumps(block, protocol=pickle.HIGHEST_PROTOCOL)
            offset = handle.seek(0, 2)  # at the end, whatever a reader of another run moved it to
            handle.write(data)
            where.append((offset, len(data)))
        return _Run(where, first, last)

    def keys(self) -> list[Any]:
        """Every lane that received records."""
        return list(self.buffers)

    def sorted(self, key: Any) -> Iterator[Any]:
        """``key``'s records in ascending order (its spilled runs merged with its buffer)."""
        records = self.buffers.get(key, [])
        records.sort()
        runs = self.runs.get(key)
        if not runs:
            return iter(records)
        # Runs that follow each other without overlap are read one after the other, not merged.
        chains: list[list[Iterator[Any]]] = []
        last: Any = None
        for run in runs:
            if chains and run.first > last:
                chains[-1].append(self._read(run))
            else:
                chains.append([self._read(run)])
            last = run.last if last is None or run.last > last else last
        streams: list[Iterator[Any]] = [itertools.chain.from_iterable(chain) for chain in chains]
        while len(streams) > FAN_IN:  # merge the oldest FAN_IN into one run on disk, until few enough are left
            merged = self._write(_blocks(heapq.merge(*streams[:FAN_IN])))
            self.merged_runs += 1
            streams = [*streams[FAN_IN:], self._read(merged)]
        if records:
            if records[0] > last:
                streams[-1] = itertools.chain(streams[-1], records)
            else:
                streams.append(iter(records))
        return streams[0] if len(streams) == 1 else heapq.merge(*streams)

    def _read(self, run: _Run) -> Iterator[Any]:
        handle = self._file
        assert handle is not None
        for offset, size in run.blocks:
            handle.seek(offset)
            yield from pickle.loads(handle.read(size))

    def close(self) -> None:
        """Drop the temporary file and every buffer."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.buffers.clear()
        self.runs.clear()

    def __enter__(self) -> "LaneSorter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _blocks(records: Iterator[Any]) -> Iterator[list[Any]]:
    """Sorted records cut into blocks of :data:`_BLOCK`."""
    while True:
        block = list(itertools.islice(records, _BLOCK))
        if not block:
            return
        yield block
