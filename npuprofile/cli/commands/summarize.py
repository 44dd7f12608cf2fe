"""``npuprofile summarize``: top ops, regions and steps of a trace (or a directory of traces)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from npuprofile.summary.model import Summary

NAME = "summarize"
HELP = "summarize traces: top ops by self time (CPU and device), regions, per-step times"
SOURCE_HELP = ("a trace file, a directory holding traces (at any depth) or only a backend's tables, "
               "or a *summary.json file npuprofile wrote (rendered again)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", metavar="TRACE_OR_DIR", help=SOURCE_HELP)
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="print JSON")
    form.add_argument("--csv", action="store_true", help="print CSV (regions, steps and ops in one table)")
    parser.add_argument("--top", type=int, default=20, metavar="N", help="ops to list per kind and rank (default: 20)")
    add_device_window(parser)
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write to FILE (a regular file) instead of standard output ('-')")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_device_window(parser: argparse.ArgumentParser) -> None:
    """``--include-last-step``: the option of the device-time window."""
    parser.add_argument("--include-last-step", action="store_true",
                        help="device time: also count what the last host step launched (by default, as HTA "
                             "does, only what was launched before the last step started)")


def check_top(top: int) -> int:
    """``--top`` must be positive."""
    from npuprofile.errors import ConfigError

    if top < 1:
        raise ConfigError(f"--top={top} is not allowed; use a whole number of 1 or more")
    return top


def read_summary(source: str, top: int, quiet: bool, *, include_last_step: bool = False) -> Summary:
    """The summary at ``source``: a saved summary file read back, else its traces summarized."""
    from pathlib import Path

    from npuprofile.analysis import summarize
    from npuprofile.cli.commands._progress import ProgressBar
    from npuprofile.cli.commands._reading import reading
    from npuprofile.summary import json

    with reading(source):
        if source.endswith("summary.json") and Path(source).is_file():
            return json.load(source)
        with ProgressBar("reading", quiet=quiet) as bar:
            return summarize(source, top=top, progress=bar, include_last_step=include_last_step)


def run(args: argparse.Namespace) -> int:
    from npuprofile.cli.commands._output import check_output, write_text

    target = check_output(args.output) if args.output else None
    summary = read_summary(args.trace, check_top(args.top), args.quiet, include_last_step=args.include_last_step)
    if args.json:
        text = summary.to_json() + "\n"
    elif args.csv:
        text = summary.to_csv()
    else:
        text = summary.text() + "\n"
    write_text(target, text)
    if target is not None:
        print(f"summary: {args.output}")
    return 0
