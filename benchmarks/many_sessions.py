"""``summarize`` of one directory holding many sessions: time per session count (must grow linearly).

Writes N sessions into one directory, each as npuprofile writes it: a small
trace (about 16 KB) and a ``*.summary.json`` listing it, then times
``npuprofile.analysis.summarize(dir)`` for each N. A summary index is built once
per call (each summary read once), so the time per session stays flat.

Prints, for each N, the seconds, the summary files read and the seconds per
session; exits non-zero when 2000 sessions take 10 s or more, or when the cost
per session at the largest N is more than 3x the one at the smallest.

    python benchmarks/many_sessions.py [--counts 250,500,1000,2000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_SECONDS = 10.0  # for 2000 sessions
LINEARITY_TARGET = 3.0  # seconds per session, largest N over smallest N


def write_sessions(directory: Path, count: int, events_per_trace: int = 90) -> None:
    """``count`` sessions in ``directory``: each a trace of regions and ops plus its summary."""
    directory.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        stem = f"run{index:05d}.rank0.host_{10000 + index}"
        trace = directory / f"{stem}.{1796000000000000000 + index}.pt.trace.json"
        events = [{"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "python"}}]
        for step in range(events_per_trace // 3):
            ts = 1000.0 + step * 100.0
            events.append({"ph": "X", "cat": "user_annotation", "name": f"ProfilerStep#{step}", "pid": 1, "tid": 1,
                           "ts": ts, "dur": 90.0, "args": {}})
            events.append({"ph": "X", "cat": "user_annotation", "name": "forward", "pid": 1, "tid": 1,
                           "ts": ts + 5, "dur": 60.0, "args": {}})
            events.append({"ph": "X", "cat": "cpu_op", "name": "aten::addmm", "pid": 1, "tid": 1,
                           "ts": ts + 10, "dur": 40.0,
                           "args": {"Input Dims": [[64, 128], [128, 128]], "External id": step}})
        trace.write_text(json.dumps({"schemaVersion": 1, "traceEvents": events}, indent=1))
        summary = {"metadata": {"backend": "cpu", "run_id": f"run{index:05d}", "rank": 0, "world_size": 1,
                                "host": "host", "pid": 10000 + index, "started_at": 1.7e9, "stopped_at": 1.7e9 + 5,
                                "steps": events_per_trace // 3, "trace_paths": [str(trace)], "degraded": []},
                   "regions": [{"name": "forward", "count": events_per_trace // 3}]}
        (directory / f"{stem}.summary.json").write_text(json.dumps(summary))


def measure(directory: Path) -> tuple[float, int, int]:
    """Seconds for ``summarize(directory)``, summary files read, traces summarized."""
    from npuprofile.analysis import runinfo
    from npuprofile.analysis.summarize import summarize

    reads = [0]
    original = runinfo.load_session_summary

    def counting(path: Path):  # type: ignore[no-untyped-def]
        reads[0] += 1
        return original(path)

    runinfo.load_session_summary = counting
    try:
        start = time.perf_counter()
        result = summarize(directory)
        elapsed = time.perf_counter() - start
    finally:
        runinfo.load_session_summary = original
    return elapsed, reads[0], len(result.sources)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="250,500,1000,2000", help="session counts (default: 250,500,1000,2000)")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="npuprofile-sessions-") as scratch:
        for count in counts:
            directory = Path(scratch) / f"n{count}"
            write_sessions(directory, count)
            size = sum(p.stat().st_size for p in directory.iterdir())
            seconds, reads, sources = measure(directory)
            rows.append((count, seconds, reads, sources, size))
            print(f"{count:5d} sessions, {size / 2**20:5.1f} MB: {seconds:6.2f} s, {reads} summary files read, "
                  f"{1000 * seconds / count:.2f} ms per session")
    failed = False
    largest = rows[-1]
    if largest[0] >= 2000 and largest[1] >= TARGET_SECONDS:
        print(f"FAIL: {largest[0]} sessions took {largest[1]:.1f} s (target: under {TARGET_SECONDS:.0f} s)")
        failed = True
    ratio = (largest[1] / largest[0]) / (rows[0][1] / rows[0][0])
    print(f"cost per session, {largest[0]} vs {rows[0][0]} sessions: ratio {ratio:.2f} (target: <= {LINEARITY_TARGET})")
    if ratio > LINEARITY_TARGET or any(reads != count for count, _, reads, _, _ in rows):
        print("FAIL: not linear (or some summary was read more than once)")
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
