"""Renderers of a comparison of two runs: a text table, JSON, and an interval chart for the HTML report.

The JSON layout (``npuprofile compare --json``) is ``{"rows": [...], ...}``
with one object per row: ``kind`` (``region``, ``op``, ``kernel``, ``step``),
``name``, ``base`` and ``new`` (mean nanoseconds per ``per``), ``change`` and
its interval ``ci_low``/``ci_high`` (fractions: 0.25 is 25% slower) and
``verdict``; then totals, counts, samples and a ``note``.
"""

from __future__ import annotations

import os
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from npuprofile.sessions.files import atomic_write_text
from npuprofile.summary.json import dumps_json
from npuprofile.summary.svg import GRID_COLOR, MUTED_COLOR, _clip, _open, _text
from npuprofile.summary.text import MISSING, format_ns, render_table

if TYPE_CHECKING:
    from npuprofile.analysis.compare import ComparedRow, Comparison, Side

#: Version of the comparison's JSON layout (fields are only added within a version).
SCHEMA_VERSION = 1
KIND = "comparison"
NAME_WIDTH = 60
#: Colour of each verdict in charts and the report.
VERDICT_COLORS = {"slower": "#c0392b", "faster": "#2e8b57", "no change": "#7b8794"}
MAX_CHART_ROWS = 40
SECTION_TITLES = {
    "step": "Step (duration)",
    "region": "Regions (time per step where the steps carry it, else per call)",
    "op": "Ops (self time per call)",
    "kernel": "Kernels and other device activity (self time per call)",
}


def format_change(change: float | None) -> str:
    """A relative change as a signed percentage (``+25.0%``); ``–`` when unknown."""
    return MISSING if change is None else f"{100 * change:+.1f}%"


def format_interval(row: ComparedRow) -> str:
    """``[low, high]`` of a tested row; empty otherwise."""
    if row.ci_low is None or row.ci_high is None:
        return ""
    return f"[{format_change(row.ci_low)}, {format_change(row.ci_high)}]"


def row_label(row: ComparedRow, width: int = NAME_WIDTH) -> str:
    """The row's name (with its rank, when the ops are per rank), clipped to ``width`` characters."""
    name = row.name if row.rank is None else f"{row.name} [rank {row.rank}]"
    return name if len(name) <= width else name[: width - 1] + "\u2026"


def method(comparison: Comparison) -> str:
    """One sentence: when a row counts as slower or faster (and, over runs, what a sample is)."""
    runs = (f"each run is one sample ({comparison.base.run_count} base runs, {comparison.new.run_count} new runs); "
            if comparison.over_runs else "")
    return (runs + f"slower/faster: the change exceeds {100 * comparison.threshold:g}% and its interval excludes 0; "
            f"the intervals hold at {100 * comparison.confidence:g}% for all {comparison.tested} tested rows "
            f"together ({100 * comparison.row_confidence:.3g}% each)")


# -- JSON -------------------------------------------------------------------------------------
def to_dict(comparison: Comparison) -> dict[str, Any]:
    """The comparison as plain JSON types."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "base": _side(comparison.base),
        "new": _side(comparison.new),
        "threshold": comparison.threshold,
        "confidence": comparison.confidence,
        "row_confidence": comparison.row_confidence,
        "min_samples": comparison.min_samples,
        "min_runs": comparison.min_runs,
        "base_runs": comparison.base.run_count,
        "new_runs": comparison.new.run_count,
        "tested": comparison.tested,
        "counts": comparison.counts(),
        "regressions": len(comparison.regressions),
        "rows": [row.to_dict() for row in comparison.rows],
    }


def render_json(comparison: Comparison, path: str | os.PathLike[str] | None = None, *, indent: int = 2) -> str:
    """The comparison as JSON text; also written atomically to ``path`` when given."""
    text = dumps_json(to_dict(comparison), indent=indent)
    if path is not None:
        atomic_write_text(Path(path), text + "\n")
    return text


def _side(side: Side) -> dict[str, Any]:
    run = side.summary.run
    return {"source": side.label, "kind": side.summary.kind, "backend": run.backend, "run_id": run.run_id,
            "steps": _steps(side), "runs": side.run_count}


def _steps(side: Side) -> int:
    """Steps of the side, over all its runs."""
    return sum(len(summary.steps) for summary in side.runs or (side.summary,))


# -- text -------------------------------------------------------------------------------------
def describe(side: Side) -> str:
    """Where a side came from and what it is: ``path (session, backend cpu, 20 steps)``."""
    summary = side.summary
    facts = [f"{side.run_count} runs"] if side.runs else []
    facts.append(summary.kind)
    if summary.run.backend:
        facts.append(f"backend {summary.run.backend}")
    if _steps(side):
        facts.append(f"{_steps(side)} steps" + (" in all" if side.runs else ""))
    return f"{side.label} ({', '.join(facts)})"


def render_text(comparison: Comparison) -> str:
    """The comparison as one table per kind of row, with a line on the method and one counting the verdicts."""
    lines = [f"npuprofile compare\n  base: {describe(comparison.base)}\n  new:  {describe(comparison.new)}",
             method(comparison)]
    kinds = list(dict.fromkeys(row.kind for row in comparison.rows))
    for kind in kinds:
        rows = [[row_label(row), row.per or MISSING, format_ns(row.base), format_ns(row.new), format_change(row.change),
                 format_interval(row), f"{row.base_samples}/{row.new_samples}", row.verdict]
                for row in comparison.rows if row.kind == kind]
        lines += ["", SECTION_TITLES.get(kind, kind),
                  render_table((kind, "per", "base", "new", "change", "interval", "samples", "verdict"), rows)]
    if not kinds:
        lines += ["", "(neither run has regions, ops or steps)"]
    counts = comparison.counts()
    lines += ["", ", ".join(f"{n} {verdict}" for verdict, n in counts.items() if n) or "no rows"]
    if counts["too few samples"] and comparison.over_runs:
        lines.append(f"too few samples: a row needs {comparison.min_runs} runs on each side that have it on one "
                     "basis (per step, else per call)")
    elif counts["too few samples"]:
        lines.append(f"too few samples: a row needs {comparison.min_samples} samples (steps, or calls with their "
                     "spread) on each side; summaries keep totals only for ops and kernels")
    return "\n".join(lines)


# -- HTML -------------------------------------------------------------------------------------
def interval_chart(rows: Sequence[ComparedRow], threshold: float, *, width: int = 900) -> str:
    """Each tested row's change as a dot and its interval as a line, zero and the threshold band marked."""
    tested = [row for row in rows if row.ci_low is not None and row.ci_high is not None][:MAX_CHART_ROWS]
    row_h, top_pad, bottom_pad, label_w = 22, 40, 30, 330
    plot_x, plot_w = label_w + 12, width - label_w - 40
    height = top_pad + row_h * max(1, len(tested)) + bottom_pad
    reach = max([abs(v) for row in tested for v in (row.ci_low, row.ci_high) if v is not None] + [2 * threshold, 0.01])
    reach = min(reach * 1.05, 10.0)

    def x_of(value: float) -> float:
        return plot_x + plot_w * (max(-reach, min(reach, value)) + reach) / (2 * reach)

    parts = _open("compare", width, height, "Change of each tested row, with its interval")
    bottom = top_pad + row_h * max(1, len(tested))
    parts.append(f'<rect x="{x_of(-threshold):.1f}" y="{top_pad - 6}" width="{x_of(threshold) - x_of(-threshold):.1f}" '
                 f'height="{bottom - top_pad + 6}" fill="{GRID_COLOR}" fill-opacity="0.6"/>')
    for tick in (-reach, -reach / 2, 0.0, reach / 2, reach):
        x = x_of(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{top_pad - 6}" x2="{x:.1f}" y2="{bottom}" stroke="{GRID_COLOR}"/>')
        parts.append(_text(x, bottom + 16, format_change(tick), anchor="middle", size=11, color=MUTED_COLOR))
    if not tested:
        parts.append(_text(plot_x, top_pad + 16, "no row had enough samples on both sides", color=MUTED_COLOR))
    for i, row in enumerate(tested):
        assert row.ci_low is not None and row.ci_high is not None and row.change is not None
        y = top_pad + i * row_h + row_h / 2
        color = VERDICT_COLORS.get(row.verdict, MUTED_COLOR)
        tip = f"{row.kind} {row.name}: {format_change(row.change)} {format_interval(row)}, {row.verdict}"
        parts.append(f'<g class="interval" data-verdict="{escape(row.verdict)}"><title>{escape(tip)}</title>')
        parts.append(_text(label_w, y + 4, _clip(f"{row.kind} {row.name}", 46), anchor="end", size=12))
        parts.append(f'<line x1="{x_of(row.ci_low):.1f}" y1="{y:.1f}" x2="{x_of(row.ci_high):.1f}" y2="{y:.1f}" '
                     f'stroke="{color}" stroke-width="2"/>')
        parts.append(f'<circle cx="{x_of(row.change):.1f}" cy="{y:.1f}" r="4" fill="{color}"/></g>')
    parts.append("</svg>")
    return "\n".join(parts)
