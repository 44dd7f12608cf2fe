"""``npuprofile backends``: each backend, whether it can run here and why not, with versions."""

from __future__ import annotations

import argparse
import json

NAME = "backends"
HELP = "list the backends, their availability (and why not) and versions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from npuprofile.backends.registry import backends
    from npuprofile.summary.text import render_table

    infos = backends.describe()
    if args.json:
        print(json.dumps([info.to_dict() for info in infos], indent=2))
        return 0
    rows = [
        [
            info.name,
            str(info.priority),
            "yes" if info.available else "no",
            ", ".join(f"{k} {v}" for k, v in info.versions.items()),
            info.reason or info.description,
        ]
        for info in infos
    ]
    print(render_table(("backend", "priority", "available", "versions", "notes"), rows))
    return 0
