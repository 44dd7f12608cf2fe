"""The timeline of a step as inline SVG: one row per host thread and per device stream.

A host thread's row shows its regions (one band per nesting depth, up to
:data:`REGION_LEVELS`) above its outermost ops; a stream's row shows its
activities coloured by kind. Every mark carries a ``<title>`` (the full name,
its start and duration); names are shortened to fit. Marks narrower than a
pixel that touch the previous mark of their band are drawn as one, and a
chart draws at most :data:`MAX_MARKS` marks; the chart says how many
intervals were merged or left out, here and in the analysis.
"""

from __future__ import annotations

from html import escape
from typing import Mapping

from npuprofile.summary.model import StepTimeline, TimelineItem, TimelineRow
from npuprofile.summary.svg import (
    GRID_COLOR,
    MUTED_COLOR,
    OTHER_COLOR,
    TEXT_COLOR,
    Formatter,
    _open,
    _text,
    _tidy,
    nice_ticks,
    shorten,
)

__all__ = ["timeline_chart", "KIND_COLORS", "MAX_MARKS", "REGION_LEVELS"]

#: Colours of device activity kinds and host ops.
KIND_COLORS = {"compute": "#4e79a7", "communication": "#e15759", "memory": "#edc948", "op": "#9aa5b1"}
#: Marks one chart draws at most.
MAX_MARKS = 6000
#: Region bands drawn per host row (deeper regions are drawn in the last band).
REGION_LEVELS = 3
_BAND = 16
_LABEL_W = 170
_LABEL_CHARS = 26


def timeline_chart(name: str, timeline: StepTimeline, fmt: Formatter, region_colors: Mapping[str, str],
                   *, width: int = 900) -> str:
    """The SVG of ``timeline`` (``region_colors``: a region's colour, others get the neutral colour)."""
    items = [item for row in timeline.rows for item in row.items]
    low = min([0] + [item.start_ns for item in items])
    high = max([timeline.duration_ns] + [item.start_ns + item.dur_ns for item in items])
    plot_x = _LABEL_W + 10
    plot_w = width - plot_x - 12
    span = max(1, high - low)
    scale = plot_w / span
    owner = "" if timeline.rank is None else f" on rank {timeline.rank}"
    title = f"Timeline of step {timeline.step}{owner} (median step, {fmt(timeline.duration_ns)})"
    top = 52
    body: list[str] = []
    y = top
    budget = [MAX_MARKS]
    merged_here = dropped_here = 0
    for row in timeline.rows:
        bands = _bands(row)
        height = _BAND * max(1, len(bands)) + 6
        body.append(f'<g class="timeline-row" data-lane="{escape(row.lane)}" data-kind="{escape(row.kind)}">')
        label = shorten(row.lane, _LABEL_CHARS)
        text = _text(_LABEL_W, y + min(height, 2 * _BAND) / 2 + 4, label, anchor="end", size=11)
        if label != row.lane:  # the full name on hover
            text = text.replace("</text>", f"<title>{escape(row.lane)}</title></text>")
        body.append(text)
        body.append(f'<line x1="{plot_x}" y1="{y + height - 2:.1f}" x2="{plot_x + plot_w}" '
                    f'y2="{y + height - 2:.1f}" stroke="{GRID_COLOR}"/>')
        for band_index, band in enumerate(bands):
            merged, dropped = _draw_band(body, band, plot_x, y + band_index * _BAND, low, scale, fmt,
                                         region_colors, budget)
            merged_here += merged
            dropped_here += dropped
        body.append("</g>")
        y += height
    bottom = y
    dropped_before = sum(row.dropped for row in timeline.rows)
    notes = _notes(merged_here, dropped_before + dropped_here, timeline.dropped_rows)
    if any(item.kind == "region" for item in items):
        notes.insert(0, "Regions are coloured as in the region chart; the bands below them are the outermost ops.")
    kinds = sorted({item.kind for item in items if item.kind != "region"},
                   key=lambda k: list(KIND_COLORS).index(k) if k in KIND_COLORS else len(KIND_COLORS))
    legend_y = bottom + 12
    height = legend_y + 34 + 16 * len(notes) + (0 if items else 20)
    parts = _open(name, width, int(height), title)
    parts.append(f'<g class="axis">{_axis(plot_x, plot_w, top, bottom, low, high, scale, fmt)}</g>')
    for mark, label in ((0, "step start"), (timeline.duration_ns, "step end")):
        x = plot_x + (mark - low) * scale
        parts.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{bottom}" stroke="{MUTED_COLOR}" '
                     f'stroke-dasharray="3 3"><title>{escape(label)}</title></line>')
    parts += body
    if not items:
        parts.append(_text(plot_x, top + 16, "nothing recorded in this step", color=MUTED_COLOR))
    lx = float(plot_x)
    for kind in kinds:
        parts.append(f'<g class="legend"><rect x="{lx:.1f}" y="{legend_y:.1f}" width="12" height="12" rx="2" '
                     f'fill="{KIND_COLORS.get(kind, OTHER_COLOR)}"/>'
                     + _text(lx + 18, legend_y + 11, "host op" if kind == "op" else kind, size=12) + "</g>")
        lx += 130
    for i, note in enumerate(notes):
        parts.append(_text(plot_x, legend_y + 32 + 16 * i, note, size=11, color=MUTED_COLOR,
                           extra=' class="timeline-note"'))
    parts.append("</svg>")
    return "\n".join(parts)


def _bands(row: TimelineRow) -> list[list[TimelineItem]]:
    """A host row's region bands (by depth) then its op band; a stream row's single band."""
    if row.kind != "host":
        return [list(row.items)]
    levels = sorted({min(item.level, REGION_LEVELS) for item in row.items if item.kind == "region"})
    bands = [[item for item in row.items if item.kind == "region" and min(item.level, REGION_LEVELS) == level]
             for level in levels]
    ops = [item for item in row.items if item.kind != "region"]
    return bands + ([ops] if ops else [])


def _draw_band(out: list[str], band: list[TimelineItem], plot_x: float, y: float, low: int, scale: float,
               fmt: Formatter, region_colors: Mapping[str, str], budget: list[int]) -> tuple[int, int]:
    """Append the band's marks; return (intervals drawn as one mark with others, intervals not drawn)."""
    merged = dropped = 0
    marks: list[_Mark] = []
    for item in sorted(band, key=lambda i: i.start_ns):
        x0 = plot_x + (item.start_ns - low) * scale
        x1 = x0 + item.dur_ns * scale
        last = marks[-1] if marks else None
        if last is not None and x1 - x0 < 1.0 and last.x1 - last.x0 < 1.0 and x0 - last.x1 < 1.0:
            last.count += item.count
            last.x1 = max(last.x1, x1)
            continue
        marks.append(_Mark(x0, x1, item))
    for mark in marks:
        if mark.count > 1:
            merged += mark.count
        if budget[0] <= 0:
            dropped += mark.count
            continue
        budget[0] -= 1
        item = mark.item
        color = region_colors.get(item.name, OTHER_COLOR) if item.kind == "region" else \
            KIND_COLORS.get(item.kind, OTHER_COLOR)
        w = max(mark.x1 - mark.x0, 0.6)
        many = f"{mark.count} intervals, the longest: " if mark.count > 1 else ""
        tip = f"{many}{item.name}\n{item.kind}, at {fmt(item.start_ns)}, {fmt(item.dur_ns)}"
        faded = ' fill-opacity="0.6"' if mark.count > 1 else ""
        out.append(f'<rect x="{mark.x0:.1f}" y="{y + 1:.1f}" width="{w:.1f}" height="{_BAND - 2}" fill="{color}"'
                   f'{faded} data-kind="{escape(item.kind)}"><title>{escape(tip)}</title></rect>')
        chars = int((w - 4) / 6.0)
        if chars >= 6:
            light = color in (OTHER_COLOR, KIND_COLORS["memory"], KIND_COLORS["op"])
            out.append(_text(mark.x0 + 3, y + _BAND - 4, shorten(item.name, chars, keep_end=False), size=10,
                             color=TEXT_COLOR if light else "#fff", extra=' pointer-events="none"'))
    return merged, dropped


class _Mark:
    """One drawn mark: its x extent, the item it names, and how many intervals it stands for."""

    __slots__ = ("x0", "x1", "item", "count")

    def __init__(self, x0: float, x1: float, item: TimelineItem) -> None:
        self.x0 = x0
        self.x1 = x1
        self.item = item
        self.count = item.count


def _axis(plot_x: float, plot_w: float, top: float, bottom: float, low: int, high: int, scale: float,
          fmt: Formatter) -> str:
    parts = []
    ticks = nice_ticks(float(high - low), 6)
    for tick in ticks:
        value = low + tick
        x = plot_x + tick * scale
        if x > plot_x + plot_w + 0.5:
            break
        parts.append(f'<line x1="{x:.1f}" y1="{top - 10}" x2="{x:.1f}" y2="{bottom}" stroke="{GRID_COLOR}"/>')
        parts.append(_text(x, top - 14, _tidy(fmt(value)), anchor="middle", size=11, color=MUTED_COLOR))
    return "".join(parts)


def _notes(merged: int, dropped: int, dropped_rows: int) -> list[str]:
    notes = []
    if merged:
        notes.append(f"{merged:,} short intervals are drawn merged with their neighbours "
                     "(faded marks; hover one for how many).")
    if dropped:
        notes.append(f"{dropped:,} intervals are not drawn (each row and the chart keep a "
                     "bounded number of marks).")
    if dropped_rows:
        notes.append(f"{dropped_rows} less busy thread or stream rows are not drawn.")
    return notes
