"""``npuprofile merge``: one Chrome trace from the per-rank traces of a run."""

from __future__ import annotations

import argparse
import sys

NAME = "merge"
HELP = "merge the per-rank traces of one run into one trace (one lane per rank, clocks aligned)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="PATH",
                        help="trace files, or directories holding them (at any depth)")
    parser.add_argument("-o", "--output", required=True,
                        help="the merged trace (.json, or .json.gz to compress; a regular file), "
                             "or '-' for standard output")
    parser.add_argument("--run-id", default=None, help="merge only this run's traces")
    parser.add_argument("--allow-mixed-runs", action="store_true",
                        help="merge traces of different runs (different run ids or world sizes, or a rank twice)")
    parser.add_argument("--align", choices=("clock", "none"), default="clock",
                        help="clock: put every rank on one time base (default); none: keep timestamps")
    parser.add_argument("--group-by", default="", metavar="KEYS",
                        help="order and label lanes by these coordinates first, e.g. tp,dp")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress display")


def run(args: argparse.Namespace) -> int:
    from npuprofile.analysis.events import find_traces
    from npuprofile.analysis.merge import merge_traces
    from npuprofile.cli.commands._output import check_output, produce_into
    from npuprofile.cli.commands._progress import ProgressBar
    from npuprofile.cli.commands._reading import reading

    group_by = tuple(key.strip() for key in args.group_by.split(",") if key.strip())
    target = check_output(args.output)
    output = target.resolve() if target is not None else None
    paths = [p for source in args.inputs for p in find_traces(source) if p.resolve() != output]
    with reading(*args.inputs), ProgressBar("merging", quiet=args.quiet) as progress:
        result = produce_into(target, ".json", lambda out: merge_traces(
            paths, out, run_id=args.run_id, allow_mixed_runs=args.allow_mixed_runs, align=args.align,
            progress=progress, group_by=group_by))
    ranks = ",".join(str(r) for r in result.ranks)
    runs = ", ".join(result.run_ids)
    print(f"merged {len(result.files)} trace(s) of run {runs} (ranks {ranks}): "
          f"{result.events_out} events -> {result.output if target is not None else 'standard output'}",
          file=sys.stdout if target is not None else sys.stderr)
    return 0
