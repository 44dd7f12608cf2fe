"""``npuprofile analyse DIR``: run torch_npu's deferred analysis on NPU profiling directories."""

from __future__ import annotations

import argparse

NAME = "analyse"
HELP = "analyse NPU profiling directories recorded with analyse=False (needs torch_npu)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", help="a *_ascend_pt directory, or a directory holding several")
    parser.add_argument(
        "--max-process-number", type=int, default=None, metavar="N",
        help="worker processes torch_npu may use (default: torch_npu's choice)",
    )


def run(args: argparse.Namespace) -> int:
    from npuprofile.backends.npu.adapter import analyse_traces
    from npuprofile.errors import ConfigError

    if args.max_process_number is not None and args.max_process_number < 1:
        raise ConfigError(f"--max-process-number={args.max_process_number} is too small; allowed: 1 or more")
    for path in analyse_traces(args.directory, max_process_number=args.max_process_number):
        print(f"trace: {path}")
    return 0
