"""``npuprofile demo``: profile the built-in model and write traces, summary and report."""

from __future__ import annotations

import argparse

NAME = "demo"
HELP = "profile the built-in model on the best backend; write traces, summary and report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default=None, help="backend name (default: NPUPROFILE_BACKEND or auto)")
    parser.add_argument("--steps", type=int, default=6, help="steps to run (default: 6)")
    parser.add_argument("-o", "--output-dir", default="npuprofile-demo", help="where to write (default: npuprofile-demo)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from npuprofile.analysis import summarize
    from npuprofile.cli.commands._progress import ProgressBar
    from npuprofile.errors import ConfigError
    from npuprofile.sessions.files import atomic_write_text
    from npuprofile.summary.html import write_report
    from npuprofile.tools.demo import run_demo

    if args.steps < 3:
        raise ConfigError(f"--steps={args.steps} is too small; allowed: 3 or more")
    session = run_demo(output_dir=args.output_dir, backend=args.backend, steps=args.steps)
    print(session.summary())
    written = [("trace", path) for path in session.trace_paths]
    written += [("summary", path) for path in session.summary_paths]
    if session.trace_paths:
        with ProgressBar("reading", quiet=args.quiet) as bar:
            analysis = summarize(session.trace_paths, progress=bar)
        base = Path(session.output_dir) / session.file_stem
        json_path = Path(f"{base}.trace-summary.json")
        text_path = Path(f"{base}.trace-summary.txt")
        analysis.to_json(json_path)
        atomic_write_text(text_path, analysis.text() + "\n")
        report_path = write_report(analysis, f"{base}.report.html")
        if analysis.steps:
            print()
            print("Steps (from the trace)")
            print(analysis.step_table())
        written += [("analysis", json_path), ("analysis", text_path), ("report", report_path)]
    print()
    for label, path in written:
        print(f"{label + ':':<10}{path}")
    return 0
