"""``npuprofile demo``: profile the built-in model and write traces, summary and report."""

from __future__ import annotations

import argparse

NAME = "demo"
HELP = "profile the built-in model on the best backend; write traces, summary and report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default=None, help="backend name (default: NPUPROFILE_BACKEND or auto)")
    parser.add_argument("--steps", type=int, default=6, help="steps to run (default: 6)")
    parser.add_argument("-o", "--output-dir", default="npuprofile-demo", help="where to write (default: npuprofile-demo)")


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo
    from ..errors import ConfigError

    if args.steps < 3:
        raise ConfigError(f"--steps={args.steps} is too small; allowed: 3 or more")
    session = run_demo(output_dir=args.output_dir, backend=args.backend, steps=args.steps)
    summary = session.summary()
    print(summary)
    print()
    for path in session.trace_paths:
        print(f"trace:   {path}")
    for path in session.summary_paths:
        print(f"summary: {path}")
    return 0
