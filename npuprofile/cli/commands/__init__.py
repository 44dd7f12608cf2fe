"""Subcommands of the ``npuprofile`` command line, one module each.

Each module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``, and may define ``ALIASES`` (other spellings of its name).
"""

COMMANDS = ("demo", "backends", "summarize", "report", "compare", "merge", "trigger", "analyze")
