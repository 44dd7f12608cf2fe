"""``npuprofile summarize`` on hostile and broken trace files: peak memory, time, and what it says.

Each case is written in constant memory (``tests/_hostile.py``), then
summarized by the command line in a fresh process whose peak RSS is read with
``os.wait4``. Prints one row per case: input size, exit status, peak RSS,
seconds, the input read per second, and the error line (if any).

Exits non-zero when a case goes over the memory target, prints more than one
line of error, or (for the whitespace floods, which are valid JSON) reads
slower than the throughput target.

    python benchmarks/hostile_inputs.py [--scale 1.0] [--cases bomb,ws,...]

The command run is ``python -m npuprofile`` from ``PYTHONPATH``, so the same
script measures another checkout of the library.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import _hostile  # noqa: E402

RSS_TARGET_MB = 300.0
WHITESPACE_TARGET_MB_S = 100.0

# name -> (writer(path, scale), file suffix, expected exit status)
CASES: dict[str, tuple[Callable[[Path, float], Path], str, int]] = {
    "bomb": (lambda p, k: _hostile.gzip_string_bomb(p, int(1024 * k)), ".pt.trace.json.gz", 2),
    "huge-key": (lambda p, k: _hostile.huge_key(p, int(100 * k)), ".pt.trace.json", 2),
    "same-ts": (lambda p, k: _hostile.identical_timestamps(p, max(1, int(7 * k))), ".pt.trace.json", 2),
    "sparse": (lambda p, k: _hostile.sparse_after_header(p, int(2048 * k)), ".pt.trace.json", 2),
    "ws": (lambda p, k: _hostile.whitespace_between_events(p, int(500 * k)), ".pt.trace.json", 0),
    "ws-gzip": (lambda p, k: _hostile.whitespace_between_events(p, int(1024 * k), packed=True),
                ".pt.trace.json.gz", 0),
    "deep": (lambda p, k: _hostile.deep_nesting(p, 100_000), ".pt.trace.json", 2),
    "lanes": (lambda p, k: _hostile.one_lane_per_event(p, max(1, int(30 * k))), ".pt.trace.json", 2),
    "huge-head": (lambda p, k: _hostile.huge_head(p, int(100 * k)), ".pt.trace.json", 2),
    "huge-tail": (lambda p, k: _hostile.huge_tail(p, int(100 * k)), ".pt.trace.json", 2),
    "objects": (lambda p, k: _hostile.many_small_values(p, 3), ".pt.trace.json", 0),
    "names": (lambda p, k: _hostile.distinct_names(p, max(1, int(100 * k)), 8), ".pt.trace.json", 2),
    "long-names": (lambda p, k: _hostile.distinct_names(p, max(1, int(100 * k)), 2000), ".pt.trace.json", 2),
}


def run_case(path: Path, timeout: float) -> tuple[int, float, float, str]:
    """Exit status, peak RSS (MB), seconds and stderr of ``npuprofile summarize -q path``."""
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "npuprofile", "summarize", "-q", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        assert proc.stderr is not None
        err = proc.stderr.read().decode(errors="replace")
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024, time.monotonic() - start, err


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="input sizes relative to the default (1.0)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from: {', '.join(CASES)}")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per case")
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory(prefix="npuprofile-hostile-") as scratch:
        for name in args.cases.split(","):
            write, suffix, expected = CASES[name]
            path = write(Path(scratch) / f"{name}{suffix}", args.scale)
            size = path.stat().st_size
            inflated = _hostile.inflated_size(path)
            code, rss, seconds, err = run_case(path, args.timeout)
            path.unlink()
            lines = err.strip().splitlines()
            rate = inflated / 2**20 / seconds
            print(f"{name:10s} {size / 2**20:8.1f} MB on disk, {inflated / 2**20:8.1f} MB of JSON: exit {code}, "
                  f"peak RSS {rss:6.1f} MB, {seconds:6.2f} s ({rate:7.1f} MB/s)  {lines[-1][:150] if lines else ''}")
            problems = []
            if rss > RSS_TARGET_MB:
                problems.append(f"peak RSS over {RSS_TARGET_MB:.0f} MB")
            if code != expected or len(lines) > 1 or "Traceback" in err:
                problems.append(f"expected exit {expected} with at most one line of error")
            if name.startswith("ws") and rate < WHITESPACE_TARGET_MB_S:
                problems.append(f"whitespace read below {WHITESPACE_TARGET_MB_S:.0f} MB/s")
            if problems:
                print(f"FAIL {name}: {'; '.join(problems)}")
                failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
