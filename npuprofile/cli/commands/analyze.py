"""``npuprofile analyze DIR`` (alias ``analyse``): the NPU backend's deferred analysis of profiling directories."""

from __future__ import annotations

import argparse

NAME = "analyze"
ALIASES = ("analyse",)
HELP = "analyze NPU profiling directories recorded with analyse=False (needs torch_npu)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", help="a *_ascend_pt directory, or a directory holding several")
    parser.add_argument(
        "--max-process-number", type=int, default=None, metavar="N",
        help="worker processes torch_npu may use (default: torch_npu's choice)",
    )


def run(args: argparse.Namespace) -> int:
    from npuprofile.backends.npu.offline import analyze_traces

    for path in analyze_traces(args.directory, max_process_number=args.max_process_number):
        print(f"trace: {path}")
    return 0
