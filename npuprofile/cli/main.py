"""The ``npuprofile`` command line: a thin layer over the library.

User mistakes (a missing file, a bad option) end with one line on stderr and a
non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import import_module
from typing import Sequence

from npuprofile.cli.commands import COMMANDS
from npuprofile.errors import NpuProfileError

EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="npuprofile", description="Profile PyTorch on CPU, CUDA and Ascend NPU.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        module = import_module(f".commands.{name}", __package__)
        aliases = list(getattr(module, "ALIASES", ()))
        command = sub.add_parser(module.NAME, aliases=aliases, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args._run(args) or 0)
    except NpuProfileError as exc:
        print(f"npuprofile {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        print(f"npuprofile {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"npuprofile {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
