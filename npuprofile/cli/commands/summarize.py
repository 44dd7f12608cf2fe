"""``npuprofile summarize``: top ops, regions and steps of a trace (or a directory of traces)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from npuprofile.summary.model import Summary

NAME = "summarize"
HELP = "summarize traces: top ops by self time (CPU and device), regions, per-step times"
SOURCE_HELP = ("a .pt.trace.json[.gz] or trace_view.json file, a directory holding traces, "
               "or a *summary.json file npuprofile wrote (rendered again)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", metavar="TRACE_OR_DIR", help=SOURCE_HELP)
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="print JSON")
    form.add_argument("--csv", action="store_true", help="print CSV (regions, steps and ops in one table)")
    parser.add_argument("--top", type=int, default=20, metavar="N", help="ops to list per kind (default: 20)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def check_top(top: int) -> int:
    """``--top`` must be positive."""
    from npuprofile.errors import ConfigError

    if top < 1:
        raise ConfigError(f"--top={top} is not allowed; use a whole number of 1 or more")
    return top


def read_summary(source: str, top: int, quiet: bool) -> Summary:
    """The summary at ``source``: a saved summary file read back, else its traces summarized."""
    from pathlib import Path

    from npuprofile.analysis import summarize
    from npuprofile.cli.commands._progress import ProgressBar
    from npuprofile.summary import json

    if source.endswith("summary.json") and Path(source).is_file():
        return json.load(source)
    with ProgressBar("reading", quiet=quiet) as bar:
        return summarize(source, top=top, progress=bar)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from npuprofile.sessions.files import atomic_write_text

    summary = read_summary(args.trace, check_top(args.top), args.quiet)
    if args.json:
        text = summary.to_json() + "\n"
    elif args.csv:
        text = summary.to_csv()
    else:
        text = summary.text() + "\n"
    if args.output:
        atomic_write_text(Path(args.output), text)
        print(f"summary: {args.output}")
    else:
        print(text, end="")
    return 0
