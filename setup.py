"""Shim for tools that still call setup.py; the metadata lives in setup.cfg.

It also builds the optional C accelerator ``npuprofile._speedups``. When that
fails (no compiler, no Python headers), installation goes on without it and
npuprofile uses its pure-Python region path.
"""

import logging

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

logger = logging.getLogger("npuprofile.setup")


class OptionalBuildExt(build_ext):
    """build_ext that warns and carries on when an optional extension does not compile."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # no compiler at all: setuptools fails before building
            self._skipped("all extensions", exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            if not getattr(ext, "optional", False):
                raise
            self._skipped(ext.name, exc)

    @staticmethod
    def _skipped(what, exc):
        message = f"npuprofile: could not build {what} ({exc}); using the pure-Python region path"
        logger.warning(message)
        print("WARNING: " + message)


setup(
    ext_modules=[Extension("npuprofile._speedups", ["npuprofile/_speedups.c"], optional=True)],
    cmdclass={"build_ext": OptionalBuildExt},
)
