"""``npuprofile report``: one self-contained HTML file with charts and tables of a trace."""

from __future__ import annotations

import argparse

from npuprofile.cli.commands.summarize import add_device_window

NAME = "report"
HELP = "write a self-contained HTML report (charts, tables, run metadata) of traces"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from npuprofile.cli.commands.summarize import SOURCE_HELP

    parser.add_argument("trace", metavar="TRACE_OR_DIR", help=SOURCE_HELP)
    parser.add_argument("-o", "--output", default="report.html", metavar="FILE",
                        help="the HTML file to write, a regular file or '-' for standard output "
                             "(default: report.html)")
    parser.add_argument("--top", type=int, default=15, metavar="N", help="ops to chart per kind (default: 15)")
    parser.add_argument("--title", default=None, help="page title (default: from the run)")
    add_device_window(parser)
    parser.add_argument("--compare", metavar="BASE", default=None,
                        help="add a section comparing this run with BASE (a summary JSON, trace or directory)")
    parser.add_argument("--threshold", default="5%", metavar="CHANGE",
                        help="with --compare: smallest relative change that counts (default: 5%%)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from npuprofile.cli.commands._output import check_output, produce_into
    from npuprofile.cli.commands.summarize import check_top, read_summary
    from npuprofile.summary.html import write_report

    target = check_output(args.output)
    top = check_top(args.top)
    if args.compare is None:
        summary = read_summary(args.trace, top, args.quiet, include_last_step=args.include_last_step)
        path = produce_into(target, ".html", lambda out: write_report(summary, out, title=args.title))
    else:
        from npuprofile.analysis.compare import compare, top_ops
        from npuprofile.cli.commands._reading import reading

        with reading(args.compare, args.trace):
            comparison = compare(args.compare, args.trace, threshold=args.threshold)
        summary = top_ops(comparison.new.summary, top)  # compared on every op, charted on the top ones
        path = produce_into(target, ".html",
                            lambda out: write_report(summary, out, title=args.title, comparison=comparison))
    if target is not None:
        print(f"report: {path}")
    return 0
