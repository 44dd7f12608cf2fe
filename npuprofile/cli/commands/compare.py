"""``npuprofile compare``: what changed between two runs, row by row, with confidence intervals; a CI gate."""

from __future__ import annotations

import argparse

NAME = "compare"
HELP = ("compare two runs (regions, ops, kernels, the step) with confidence intervals and a verdict per row; "
        "exit 1 on a significant slowdown with --fail-on-regression")
SOURCE_HELP = ("a summary JSON npuprofile wrote, a .pt.trace.json[.gz] or trace_view.json file, a directory of traces, "
               "or a directory of several *summary.json (several runs: each run is then one sample)")
EXIT_REGRESSION = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("base", metavar="BASE", help=f"the run to compare against: {SOURCE_HELP}")
    parser.add_argument("new", metavar="NEW", help="the run to judge (same forms as BASE)")
    parser.add_argument("--json", action="store_true", help='print JSON: {"rows": [...], ...}')
    parser.add_argument("--threshold", default="5%", metavar="CHANGE",
                        help="smallest relative change that counts, as 5%% or 0.05 (default: 5%%)")
    parser.add_argument("--confidence", default="95%", metavar="LEVEL",
                        help="chance that no row is flagged when nothing changed, over all rows together "
                             "(default: 95%%)")
    parser.add_argument("--min-samples", type=int, default=None, metavar="N",
                        help="samples (steps or calls) a row needs on each side to be tested (default: 5)")
    parser.add_argument("--min-runs", type=int, default=None, metavar="N",
                        help="runs a row needs on each side to be tested, when both sides hold several runs "
                             "(default: 3)")
    parser.add_argument("--fail-on-regression", action="store_true",
                        help="exit with status 1 when a row is significantly slower")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write to FILE (a regular file) instead of standard output ('-')")


def run(args: argparse.Namespace) -> int:
    from npuprofile.analysis.compare import MIN_SAMPLES, compare
    from npuprofile.analysis.compare_runs import MIN_RUNS
    from npuprofile.cli.commands._output import check_output, write_text
    from npuprofile.cli.commands._reading import reading

    target = check_output(args.output) if args.output else None

    with reading(args.base, args.new):
        result = compare(args.base, args.new, threshold=args.threshold, confidence=args.confidence,
                         min_samples=MIN_SAMPLES if args.min_samples is None else args.min_samples,
                         min_runs=MIN_RUNS if args.min_runs is None else args.min_runs)
    text = (result.to_json() if args.json else result.text()) + "\n"
    write_text(target, text)
    if target is not None:
        print(f"comparison: {args.output}")
    return EXIT_REGRESSION if args.fail_on_regression and result.regressions else 0
