"""The self-contained HTML report of a trace summary (inline SVG charts, no network)."""

from .html import render_report, write_report

__all__ = ["render_report", "write_report"]
