"""``npuprofile trigger``: make the processes armed with ``on_demand`` profile their next steps."""

from __future__ import annotations

import argparse
import sys

NAME = "trigger"
HELP = "make the processes armed with npuprofile.on_demand() on DIR profile their next N steps"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", metavar="DIR", help="the output directory the job armed (its output_dir)")
    parser.add_argument("--steps", type=int, default=None,
                        help="steps to profile (default: the steps the job armed with)")
    parser.add_argument("--force", action="store_true",
                        help="write the trigger even while a capture runs or a trigger is pending")


def run(args: argparse.Namespace) -> int:
    from npuprofile.sessions.on_demand import write_trigger

    trigger, states = write_trigger(args.directory, args.steps, force=args.force)
    steps = trigger["steps"] if trigger["steps"] is not None else "the armed default"
    print(f"trigger {trigger['id']} written: {steps} steps")
    if not states:
        print(f"npuprofile trigger: warning: no armed process has announced itself in {args.directory}; "
              "only processes armed before this trigger act on it", file=sys.stderr)
        return 0
    for state in states:
        print(f"  armed: rank {state.get('rank')} on {state.get('host')} (pid {state.get('pid')}, "
              f"run {state.get('run_id')})")
    return 0
