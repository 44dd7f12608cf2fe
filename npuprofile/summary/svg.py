"""Inline SVG charts drawn on the server: horizontal bars and stacked columns, with tooltips.

Every chart is a plain string of SVG with a ``<title>`` on each mark (the
browser shows it as a tooltip) and a ``data-chart`` attribute naming the chart,
so a page needs no script and no network.
"""

from __future__ import annotations

import dataclasses
import math
import re
from html import escape
from typing import Callable, Sequence

Formatter = Callable[[float], str]

#: A categorical palette: distinct in hue, even in weight, readable on white.
PALETTE = (
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#6b9ac4",
    "#d37295", "#8cd17d",
)
OTHER_COLOR = "#c7cdd4"
TEXT_COLOR = "#1f2933"
MUTED_COLOR = "#616e7c"
GRID_COLOR = "#e4e7eb"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"


@dataclasses.dataclass(frozen=True)
class Bar:
    """One row of a horizontal bar chart; ``back`` draws a lighter bar behind (e.g. total behind self)."""

    label: str
    value: float
    color: str
    tooltip: str
    back: float | None = None
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Column:
    """One stacked column: ``segments`` maps series name to value."""

    label: str
    segments: dict[str, float]
    tooltip: str = ""


@dataclasses.dataclass(frozen=True)
class Series:
    """A named colour in a stacked chart's legend."""

    name: str
    color: str


def colors_for(names: Sequence[str]) -> dict[str, str]:
    """A colour for each name, in order, reused across charts so one region has one colour."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``top``."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    ticks = [0.0]
    while ticks[-1] < top - 1e-12 * top:
        ticks.append(ticks[-1] + step)
    return ticks


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: int = 12, color: str = TEXT_COLOR,
          weight: str = "normal", extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{color}" '
            f'font-weight="{weight}"{extra}>{escape(text)}</text>')


def _tidy(text: str) -> str:
    """Axis labels read better without trailing zeros: ``20.00ms`` -> ``20ms``, ``2.50ms`` -> ``2.5ms``."""
    return re.sub(r"\.?0+(?=[^\d.]*$)", "", text) if "." in text else text


def _clip(label: str, limit: int) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "\u2026"


def _open(name: str, width: int, height: int, title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{escape(name)}" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px" font-family="{escape(FONT)}">',
        f"<title>{escape(title)}</title>",
        _text(0, 18, title, size=15, weight="600"),
    ]


def hbar_chart(name: str, title: str, bars: Sequence[Bar], fmt: Formatter, *, width: int = 900,
               label_chars: int = 44) -> str:
    """Horizontal bars, one per row, largest value first as given; values printed at the bar's end."""
    row, top_pad, bottom_pad = 26, 40, 28
    label_w = min(8 * label_chars, max(120, 7 * max((len(_clip(b.label, label_chars)) for b in bars), default=10)))
    plot_x = label_w + 12
    plot_w = width - plot_x - 110
    height = top_pad + row * max(1, len(bars)) + bottom_pad
    peak = max([b.value for b in bars] + [b.back or 0 for b in bars] + [0.0])
    ticks = nice_ticks(peak)
    scale = plot_w / ticks[-1]
    parts = _open(name, width, height, title)
    base = top_pad + row * max(1, len(bars))
    for tick in ticks:
        x = plot_x + tick * scale
        parts.append(f'<line x1="{x:.1f}" y1="{top_pad - 6}" x2="{x:.1f}" y2="{base}" stroke="{GRID_COLOR}"/>')
        parts.append(_text(x, base + 16, _tidy(fmt(tick)), anchor="middle", size=11, color=MUTED_COLOR))
    if not bars:
        parts.append(_text(plot_x, top_pad + 16, "nothing recorded", color=MUTED_COLOR))
    for i, bar in enumerate(bars):
        y = top_pad + i * row
        parts.append(f'<g class="bar" data-label="{escape(bar.label)}">')
        parts.append(f"<title>{escape(bar.tooltip)}</title>")
        parts.append(_text(label_w, y + 17, _clip(bar.label, label_chars), anchor="end"))
        if bar.back is not None and bar.back > bar.value:
            parts.append(f'<rect x="{plot_x}" y="{y + 5}" width="{bar.back * scale:.1f}" height="{row - 10}" '
                         f'rx="2" fill="{bar.color}" fill-opacity="0.28"/>')
        bar_w = max(bar.value * scale, 1.0 if bar.value > 0 else 0.0)
        parts.append(f'<rect x="{plot_x}" y="{y + 5}" width="{bar_w:.1f}" height="{row - 10}" rx="2" '
                     f'fill="{bar.color}"/>')
        end = plot_x + max(bar_w, (bar.back or 0) * scale) + 6
        parts.append(_text(end, y + 17, fmt(bar.value) + (f"  {bar.note}" if bar.note else ""), size=11,
                           color=MUTED_COLOR))
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)


def stacked_columns(name: str, title: str, columns: Sequence[Column], series: Sequence[Series], fmt: Formatter,
                    *, width: int = 900, height: int = 340) -> str:
    """Columns stacked by series (bottom first), with a y axis and a legend under the plot."""
    legend_cols = 4
    legend_rows = math.ceil(len(series) / legend_cols)
    top_pad, axis_w = 40, 64
    plot_h = height - top_pad - 40
    total_h = height + 22 * legend_rows + 10
    plot_x = axis_w
    plot_w = width - plot_x - 10
    peak = max((sum(c.segments.values()) for c in columns), default=0.0)
    ticks = nice_ticks(peak)
    scale = plot_h / ticks[-1]
    base = top_pad + plot_h
    parts = _open(name, width, total_h, title)
    for tick in ticks:
        y = base - tick * scale
        parts.append(f'<line x1="{plot_x}" y1="{y:.1f}" x2="{plot_x + plot_w}" y2="{y:.1f}" stroke="{GRID_COLOR}"/>')
        parts.append(_text(plot_x - 6, y + 4, _tidy(fmt(tick)), anchor="end", size=11, color=MUTED_COLOR))
    slot = plot_w / max(1, len(columns))
    bar_w = min(56.0, slot * 0.7)
    label_every = max(1, math.ceil(len(columns) / 30))
    for i, column in enumerate(columns):
        x = plot_x + i * slot + (slot - bar_w) / 2
        y = base
        total = sum(column.segments.values())
        parts.append(f'<g class="column" data-label="{escape(column.label)}">')
        for entry in series:
            value = column.segments.get(entry.name, 0.0)
            if value <= 0:
                continue
            h = value * scale
            y -= h
            share = f" ({100 * value / total:.1f}%)" if total else ""
            tip = f"{column.tooltip or column.label}\n{entry.name}: {fmt(value)}{share}"
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{max(h, 0.5):.1f}" '
                         f'fill="{entry.color}" data-series="{escape(entry.name)}"><title>{escape(tip)}</title></rect>')
        if i % label_every == 0:
            parts.append(_text(x + bar_w / 2, base + 16, column.label, anchor="middle", size=11, color=MUTED_COLOR))
        parts.append("</g>")
    parts.append(f'<line x1="{plot_x}" y1="{base}" x2="{plot_x + plot_w}" y2="{base}" stroke="{MUTED_COLOR}"/>')
    legend_y = height + 4
    cell = (width - plot_x) / legend_cols
    for i, entry in enumerate(series):
        lx = plot_x + (i % legend_cols) * cell
        ly = legend_y + (i // legend_cols) * 22
        parts.append(f'<g class="legend"><rect x="{lx:.1f}" y="{ly:.1f}" width="12" height="12" rx="2" '
                     f'fill="{entry.color}"/>')
        parts.append(_text(lx + 18, ly + 11, _clip(entry.name, 30), size=12) + "</g>")
    parts.append("</svg>")
    return "\n".join(parts)


def shorten(name: str, limit: int = 60, *, keep_end: bool = True) -> str:
    """A long (kernel) name made readable in ``limit`` characters; the full name belongs in a tooltip.

    A leading ``void``, template arguments and the argument list go first
    (``void at::native::f<float, 4>(int)`` -> ``at::native::f<…>``), then the
    namespaces, and what is still too long keeps its start and end around an
    ellipsis (``keep_end=False``: its start only). Names within the limit are
    left as they are.
    """
    if len(name) <= limit:
        return name
    text = name.strip()
    if text.startswith("void "):
        text = text[5:]
    text = _drop_nested(text, "(", ")", "")
    text = _drop_nested(text, "<", ">", "<\u2026>")
    if len(text) > limit and "::" in text:
        head, _, last = text.rpartition("::")
        if last and _NAMESPACES.match(head) and not head.endswith("operator"):
            text = last
    if len(text) <= limit:
        return text
    keep = max(1, limit - 1)
    front = (keep + 1) // 2 if keep_end else keep
    return text[:front] + "\u2026" + text[len(text) - (keep - front):] if keep - front else text[:keep] + "\u2026"


_NAMESPACES = re.compile(r"^[\w:~\u2026<>]+$")


def _drop_nested(text: str, opening: str, closing: str, replacement: str) -> str:
    """``text`` with each outermost ``opening...closing`` group replaced (an unbalanced text is kept as it is)."""
    out: list[str] = []
    depth = 0
    for char in text:
        if char == opening:
            if depth == 0:
                out.append(replacement)
            depth += 1
        elif char == closing and depth:
            depth -= 1
        elif depth == 0:
            out.append(char)
    result = "".join(out).strip()
    return result if depth == 0 and result else text


@dataclasses.dataclass(frozen=True)
class StackedBar:
    """One horizontal bar split into segments (``segments`` maps series name to value), drawn to ``total``."""

    label: str
    segments: dict[str, float]
    total: float
    tooltip: str = ""


def stacked_bars(name: str, title: str, bars: Sequence[StackedBar], series: Sequence[Series], fmt: Formatter,
                 *, width: int = 900, label_chars: int = 28) -> str:
    """Horizontal bars each split into its series (left first), every bar scaled to its own total (100%)."""
    row, top_pad = 28, 40
    label_w = min(8 * label_chars, max(90, 7 * max((len(_clip(b.label, label_chars)) for b in bars), default=8)))
    plot_x = label_w + 12
    plot_w = width - plot_x - 70
    legend_y = top_pad + row * max(1, len(bars)) + 14
    places = _legend_places(series, plot_x, width)
    height = legend_y + (max((line for _, line in places), default=0) + 1) * 22 + 6
    parts = _open(name, width, height, title)
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = plot_x + fraction * plot_w
        parts.append(f'<line x1="{x:.1f}" y1="{top_pad - 6}" x2="{x:.1f}" y2="{legend_y - 14}" stroke="{GRID_COLOR}"/>')
        parts.append(_text(x, top_pad - 10, f"{fraction:.0%}", anchor="middle", size=11, color=MUTED_COLOR))
    for i, bar in enumerate(bars):
        y = top_pad + i * row
        parts.append(f'<g class="stacked-bar" data-label="{escape(bar.label)}">')
        label = _text(label_w, y + 18, _clip(bar.label, label_chars), anchor="end")
        if len(bar.label) > label_chars:  # the full label on hover
            label = label.replace("</text>", f"<title>{escape(bar.label)}</title></text>")
        parts.append(label)
        x = float(plot_x)
        for entry in series:
            value = bar.segments.get(entry.name, 0.0)
            if value <= 0 or bar.total <= 0:
                continue
            w = plot_w * value / bar.total
            tip = f"{bar.tooltip or bar.label}\n{entry.name}: {fmt(value)} ({value / bar.total:.1%})"
            parts.append(f'<rect x="{x:.1f}" y="{y + 5}" width="{max(w, 0.5):.1f}" height="{row - 10}" '
                         f'fill="{entry.color}" data-series="{escape(entry.name)}"><title>{escape(tip)}</title></rect>')
            if w > 44:
                parts.append(_text(x + w / 2, y + 18, f"{value / bar.total:.0%}", anchor="middle", size=11,
                                   color="#fff" if entry.color not in _LIGHT else TEXT_COLOR))
            x += w
        parts.append(_text(plot_x + plot_w + 6, y + 18, fmt(bar.total), size=11, color=MUTED_COLOR))
        parts.append("</g>")
    for entry, (lx, line) in zip(series, places):
        ly = legend_y + line * 22
        parts.append(f'<g class="legend"><rect x="{lx:.1f}" y="{ly:.1f}" width="12" height="12" rx="2" '
                     f'fill="{entry.color}"/>')
        parts.append(_text(lx + 18, ly + 11, _clip(entry.name, 34), size=12) + "</g>")
    parts.append("</svg>")
    return "\n".join(parts)


def _legend_places(series: Sequence[Series], left: float, width: float) -> list[tuple[float, int]]:
    """Where each legend entry goes, left to right, wrapping lines: ``(x, line)``."""
    places = []
    x, line = left, 0
    for entry in series:
        size = 18 + 7 * len(_clip(entry.name, 34)) + 24
        if x + size > width and x > left:
            x, line = left, line + 1
        places.append((x, line))
        x += size
    return places


#: Fills light enough that text on them is drawn dark.
_LIGHT = frozenset({OTHER_COLOR, "#edc948", "#e4e7eb", "#d9dee3", "#8cd17d", "#ff9da7"})
