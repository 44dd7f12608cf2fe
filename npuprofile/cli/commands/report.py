"""``npuprofile report``: one self-contained HTML file with charts and tables of a trace."""

from __future__ import annotations

import argparse

from npuprofile.cli.commands.summarize import add_device_window

NAME = "report"
HELP = "write a self-contained HTML report (charts, tables, run metadata) of traces"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", metavar="TRACE_OR_DIR",
                        help="a .pt.trace.json[.gz] or trace_view.json file, or a directory holding traces")
    parser.add_argument("-o", "--output", default="report.html", metavar="FILE",
                        help="the HTML file to write (default: report.html)")
    parser.add_argument("--top", type=int, default=15, metavar="N", help="ops to chart per kind (default: 15)")
    parser.add_argument("--title", default=None, help="page title (default: from the run)")
    add_device_window(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from npuprofile.analysis import summarize
    from npuprofile.cli.commands._progress import ProgressBar
    from npuprofile.cli.commands.summarize import check_top
    from npuprofile.summary.html import write_report

    top = check_top(args.top)
    with ProgressBar("reading", quiet=args.quiet) as bar:
        summary = summarize(args.trace, top=top, progress=bar, include_last_step=args.include_last_step)
    path = write_report(summary, args.output, title=args.title)
    print(f"report: {path}")
    return 0
