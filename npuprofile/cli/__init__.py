"""The ``npuprofile`` command line: a thin argparse layer over the library."""

from __future__ import annotations

from npuprofile.cli.main import main

__all__ = ["main"]
