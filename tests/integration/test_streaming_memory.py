"""The streaming trace reader and the merge keep memory bounded on large synthetic traces."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from npuprofile.analysis import events as events_module
from npuprofile.analysis import iter_events
from npuprofile.analysis.merge import merge_traces
from tests._trace_factory import x_event


def test_memory_does_not_grow_with_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Reads go in chunks; small chunks let a small test see whether memory follows the input or the chunk.
    monkeypatch.setattr(events_module, "CHUNK_BYTES", 1 << 14)

    def peak_for(events: int) -> tuple[int, int]:
        directory = tmp_path / f"n{events}"
        directory.mkdir()
        paths = []
        for rank in range(2):
            path = directory / f"r.rank{rank}.h_1.pt.trace.json"
            with open(path, "w") as handle:  # written in pieces, so the test itself stays small
                handle.write('{"baseTimeNanoseconds": 0, "traceEvents": [')
                for i in range(events):
                    handle.write(("," if i else "") + json.dumps(x_event(f"op{i % 97}", float(i), 5.0, cat=None, i=i)))
                handle.write("]}")
            paths.append(path)
        tracemalloc.start()
        merge_traces(paths, directory / "merged.json")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return peak, sum(p.stat().st_size for p in paths)

    small_peak, small_size = peak_for(8_000)
    big_peak, big_size = peak_for(32_000)
    assert big_size > 3.5 * small_size
    assert big_peak < small_peak * 1.5 + (1 << 20), (small_peak, big_peak)
    assert big_peak < big_size  # parsed events take several times their JSON size: they are not all kept


def test_memory_does_not_grow_with_file_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_module, "CHUNK_BYTES", 128 << 10)
    event = {"ph": "X", "cat": "cpu_op", "name": "aten::addmm", "pid": 1, "tid": 1, "ts": 1.5, "dur": 2.5,
             "args": {"Input Dims": [[8, 32], [32, 32]], "Input type": ["float", "float"]}}

    def peak_for(count: int) -> tuple[int, int]:
        path = tmp_path / f"t{count}.json"
        with open(path, "w") as handle:
            handle.write('{"schemaVersion": 1, "traceEvents": [')
            handle.write(",\n".join([json.dumps(event)] * count))
            handle.write("]}")
        tracemalloc.start()
        try:
            total = sum(1 for _ in iter_events(path))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert total == count
        return path.stat().st_size, peak

    small_size, small_peak = peak_for(20_000)
    big_size, big_peak = peak_for(80_000)
    assert big_size > 3.5 * small_size
    assert big_peak < 1.5 * small_peak + (1 << 20)
    assert big_peak < big_size / 2
