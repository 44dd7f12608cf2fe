"""Shim for tools that still call setup.py; the metadata lives in setup.cfg (a pure-Python package)."""

from setuptools import setup

setup()
