"""``npuprofile merge``: one Chrome trace from the per-rank traces of a run."""

from __future__ import annotations

import argparse
import sys
import time

NAME = "merge"
HELP = "merge the per-rank traces of one run into one trace (one lane per rank, clocks aligned)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="PATH", help="a directory of traces, or trace files")
    parser.add_argument("-o", "--output", required=True, help="the merged trace (.json, or .json.gz to compress)")
    parser.add_argument("--run-id", default=None, help="merge only this run's traces")
    parser.add_argument("--allow-mixed-runs", action="store_true", help="merge traces of different runs")
    parser.add_argument("--align", choices=("clock", "none"), default="clock",
                        help="clock: put every rank on one time base (default); none: keep timestamps")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress display")


class _ProgressLine:
    """A progress line on stderr, redrawn at most every 0.2 s."""

    def __init__(self) -> None:
        self.last = 0.0
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.2:
            return
        self.last = now
        self.shown = True
        sys.stderr.write(f"\rmerging: {done / total:6.1%} of {total / 1e6:,.1f} MB read")
        sys.stderr.flush()

    def end(self) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * 50 + "\r")
            sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..analysis.events import find_traces
    from ..analysis.merge import merge_traces

    output = Path(args.output).resolve()
    paths = [p for source in args.inputs for p in find_traces(source) if p.resolve() != output]
    progress = _ProgressLine() if not args.quiet and sys.stderr.isatty() else None
    try:
        result = merge_traces(paths, args.output, run_id=args.run_id, allow_mixed_runs=args.allow_mixed_runs,
                              align=args.align, progress=progress)
    finally:
        if progress is not None:
            progress.end()
    ranks = ",".join(str(r) for r in result.ranks)
    runs = ", ".join(result.run_ids)
    print(f"merged {len(result.files)} trace(s) of run {runs} (ranks {ranks}): "
          f"{result.events_out} events -> {result.output}")
    return 0
