"""The HTML renderer: a summary as one self-contained page (inline CSS and SVG, no script, no network).

Sections appear for what the summary holds: regions and steps always, ops per
clock, memory peaks, ranks and stragglers of a gathered summary, device time
(a stacked bar per rank and device, kernel types, streams, steps) and the
timeline of each trace's median step. Long names are shortened for display,
with the full name on hover (``<title>`` in charts, ``title=`` in tables).
"""

from __future__ import annotations

import datetime
import json
import os
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from npuprofile.sessions.files import atomic_write_text
from npuprofile.summary.model import DEVICE, HOST, HOST_AND_DEVICE, SYNC, DeviceTime, RunInfo, Summary
from npuprofile.summary.svg import (
    OTHER_COLOR,
    Bar,
    Column,
    Series,
    StackedBar,
    colors_for,
    hbar_chart,
    shorten,
    stacked_bars,
    stacked_columns,
)
from npuprofile.summary.text import MISSING, format_bytes, format_ns, format_share
from npuprofile.summary.timeline import KIND_COLORS, timeline_chart

if TYPE_CHECKING:
    from npuprofile.analysis.compare import Comparison

OUTSIDE = "outside regions"
OTHER_REGIONS = "other regions"
MAX_SERIES = 10
MAX_OPS_CHART = 15
#: Characters of a name shown in a table cell (the full name is its ``title``).
NAME_CHARS = 80
IDLE_COLOR = "#d9dee3"
#: The device-time bar's parts: they add up to the span.
COMPUTE, COMM_ALONE, MEMORY_ALONE, IDLE = "compute", "communication (not overlapped)", "memory (alone)", "idle"

_CSS = """
:root { --text:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f5f7fa; --card:#fff; --accent:#4e79a7; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--text);
  font:14px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif; }
header { background:#1f2933; color:#fff; padding:24px 32px; }
header h1 { margin:0 0 4px; font-size:22px; font-weight:600; }
header p { margin:0; color:#cbd2d9; }
main { max-width:1000px; margin:0 auto; padding:24px 16px 48px; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:20px 24px; margin:0 0 20px; }
h2 { font-size:17px; margin:0 0 4px; }
p.hint { color:var(--muted); margin:0 0 14px; font-size:13px; }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(150px,1fr)); gap:12px; margin:0 0 20px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 16px; }
.card .v { font-size:20px; font-weight:600; }
.card .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
table { border-collapse:collapse; width:100%; font-size:13px; margin-top:12px; }
th, td { padding:5px 8px; border-bottom:1px solid var(--line); text-align:right; white-space:nowrap; }
th:first-child, td:first-child { text-align:left; white-space:normal; word-break:break-all; }
th { color:var(--muted); font-weight:600; background:#fafbfc; }
tbody tr:hover { background:#f0f4f8; }
.swatch { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:6px; vertical-align:baseline; }
dl { display:grid; grid-template-columns:max-content 1fr; gap:4px 16px; margin:0; font-size:13px; }
dt { color:var(--muted); }
dd { margin:0; word-break:break-all; }
pre { margin:0; white-space:pre-wrap; font-size:12px; }
.warn { background:#fff8e1; border-color:#f0c36d; }
footer { color:var(--muted); font-size:12px; text-align:center; }
svg.chart { display:block; margin:4px 0 0; }
h3 { font-size:15px; margin:22px 0 4px; }
section#timeline svg.chart + svg.chart { margin-top:18px; }
"""


def render_report(summary: Summary, title: str | None = None, comparison: Comparison | None = None) -> str:
    """The report page of ``summary`` as one HTML string; with ``comparison``, a section comparing it to a base run."""
    run = summary.run
    title = title or _default_title(summary)
    colors = _region_colors(summary)
    body = [
        _cards(summary),
        _warnings(summary),
        _comparison_section(comparison),
        _regions_section(summary, colors),
        _steps_section(summary, colors),
        _ops_section(summary, HOST),
        _ops_section(summary, DEVICE),
        _ops_section(summary, SYNC),
        _host_device_ops_section(summary),
        _memory_section(summary),
        _ranks_section(summary),
        _device_time_section(summary),
        _timeline_section(summary, colors),
        _metadata_section(summary),
    ]
    from npuprofile import __version__

    generated = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    subtitle = " · ".join(str(x) for x in (
        run.run_id, f"backend {run.backend}" if run.backend else None, run.host, _started(run)) if x)
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<header><h1>{escape(title)}</h1><p>{escape(subtitle or 'trace analysis')}</p></header>",
        "<main>",
        *[part for part in body if part],
        f"<footer>Generated by npuprofile {escape(__version__)} on {generated}. "
        "Self-contained: no scripts, no network.</footer>",
        "</main></body></html>",
    ])


def write_report(summary: Summary, path: str | os.PathLike[str], title: str | None = None,
                 comparison: Comparison | None = None) -> Path:
    """Write the report atomically to ``path``; return the path."""
    target = Path(path)
    atomic_write_text(target, render_report(summary, title, comparison))
    return target


# -- sections --------------------------------------------------------------------------
def _default_title(summary: Summary) -> str:
    backend = summary.run.backend
    return f"npuprofile report ({backend})" if backend else "npuprofile report"


def _started(run: RunInfo) -> str | None:
    if run.started_at is None:
        return None
    return datetime.datetime.fromtimestamp(run.started_at).strftime("%Y-%m-%d %H:%M:%S")


def _region_colors(summary: Summary) -> dict[str, str]:
    names = [r.name for r in sorted(summary.regions, key=lambda r: r.self_ns, reverse=True)]
    colors = colors_for(names[:MAX_SERIES])
    for name in names[MAX_SERIES:]:
        colors[name] = OTHER_COLOR
    return colors


def _cards(summary: Summary) -> str:
    steps = summary.steps
    size = sum(s.size_bytes for s in summary.sources)
    items = [
        ("steps", str(len(steps))),
        ("mean step", format_ns(summary.step_time_ns / len(steps)) if steps else MISSING),
        ("regions", str(len(summary.regions))),
        ("traces", str(len(summary.sources))),
        ("events", f"{sum(s.events for s in summary.sources):,}"),
        ("trace size", format_bytes(size)),
    ]
    ranks = summary.ranks or summary.metadata.get("ranks") or []
    if len(ranks) > 1:
        items.insert(0, ("ranks", str(len(ranks))))
    cells = "".join(f'<div class="card"><div class="k">{escape(k)}</div><div class="v">{escape(v)}</div></div>'
                    for k, v in items)
    return f'<div class="cards">{cells}</div>'


def _warnings(summary: Summary) -> str:
    notes = [f"Degraded session: {d}" for d in summary.run.degraded]
    if summary.late_events:
        notes.append(f"{summary.late_events} events arrived far out of order; their nesting was not resolved.")
    if not notes:
        return ""
    return '<section class="warn"><h2>Notes</h2>' + "".join(f"<p>{escape(n)}</p>" for n in notes) + "</section>"


def _comparison_section(comparison: Comparison | None) -> str:
    """Base and new side by side, row by row: means, change, interval and verdict, tested rows charted."""
    if comparison is None:
        return ""
    from npuprofile.summary import comparison as render

    counts = ", ".join(f"{n} {verdict}" for verdict, n in comparison.counts().items() if n) or "no rows"
    colors = render.VERDICT_COLORS
    table = _table(
        ("kind", "name", "per", "base", "new", "change", "interval", "samples", "verdict"),
        [(escape(r.kind), escape(render.row_label(r, 200)), escape(r.per or MISSING), format_ns(r.base),
          format_ns(r.new), render.format_change(r.change), render.format_interval(r),
          f"{r.base_samples}/{r.new_samples}",
          f'<span style="color:{colors.get(r.verdict, "inherit")}" title="{escape(r.note)}">{escape(r.verdict)}'
          "</span>") for r in comparison.rows],
    )
    return ('<section id="compare"><h2>Compared with the base run</h2>'
            f'<p class="hint">Base: {escape(render.describe(comparison.base))}. This report: '
            f'{escape(render.describe(comparison.new))}. {escape(render.method(comparison))}. {escape(counts)}.</p>'
            + render.interval_chart(comparison.rows, comparison.threshold) + table + "</section>")


def _regions_section(summary: Summary, colors: dict[str, str]) -> str:
    head = ('<section id="regions"><h2>Where the time goes: regions</h2>'
            '<p class="hint">Self time of each region (time not spent in a nested region), solid; total time, '
            'light. Share is self time over all step time.</p>')
    if not summary.regions:
        return head + '<p class="hint">No regions in this trace.</p></section>'
    rows = sorted(summary.regions, key=lambda r: r.self_ns, reverse=True)
    bars = [Bar(r.name, r.self_ns, colors[r.name],
                f"{r.name}\nself {format_ns(r.self_ns)}" + ("" if r.share is None else
                                                             f" ({format_share(r.share)} of step time)")
                + f"\ntotal {format_ns(r.total_ns)} over {r.count} call(s)",
                back=r.total_ns, note="" if r.share is None else format_share(r.share)) for r in rows]
    chart = hbar_chart("regions", "Region self time (total behind)", bars, format_ns)
    table = _table(
        ("region", "calls", "total", "self", "mean total", "share"),
        [(_swatch(colors[r.name]) + escape(r.name), str(r.count), format_ns(r.total_ns), format_ns(r.self_ns),
          format_ns(r.mean_ns), format_share(r.share)) for r in rows],
    )
    return head + chart + table + "</section>"


def _steps_section(summary: Summary, colors: dict[str, str]) -> str:
    head = ('<section id="steps"><h2>Steps</h2>'
            '<p class="hint">Each column is one profiler step, stacked by region self time; '
            f'"{OUTSIDE}" is step time not inside any region.</p>')
    if not summary.steps:
        return head + '<p class="hint">No ProfilerStep events in this trace.</p></section>'
    named = [n for n, c in colors.items() if c != OTHER_COLOR]
    multi = len({s.source for s in summary.steps}) > 1
    columns = []
    for s in summary.steps:
        segments = {n: float(s.regions.get(n, 0)) for n in named}
        rest = sum(v for n, v in s.regions.items() if n not in segments)
        if rest:
            segments[OTHER_REGIONS] = float(rest)
        segments[OUTSIDE] = float(s.other_ns)
        owner = f"rank {s.rank}" if s.rank is not None else f"trace {s.source}"
        label = f"{s.index}" if not multi else f"{owner}:{s.index}"
        columns.append(Column(label, segments, f"step {s.index}{' on ' + owner if multi else ''}: "
                                                f"{format_ns(s.duration_ns)}"))
    series = [Series(n, colors[n]) for n in named]
    if any(OTHER_REGIONS in c.segments for c in columns):
        series.append(Series(OTHER_REGIONS, "#9aa5b1"))
    series.append(Series(OUTSIDE, OTHER_COLOR))
    chart = stacked_columns("steps", "Step time by region", columns, series, format_ns)
    table = _table(
        ("step", "rank", "start", "duration", "in regions", OUTSIDE),
        [(str(s.index), MISSING if s.rank is None else str(s.rank), format_ns(s.start_ns), format_ns(s.duration_ns),
          format_ns(sum(s.regions.values())), format_ns(s.other_ns)) for s in summary.steps],
    )
    return head + chart + table + "</section>"


def _ops_section(summary: Summary, kind: str) -> str:
    ops = summary.ops_of(kind)
    label = {HOST: "CPU", DEVICE: "device", SYNC: "synchronization"}[kind]
    if not ops and (kind != HOST or summary.ops_of(HOST_AND_DEVICE)):
        return ""
    head = (f'<section id="{kind}-ops"><h2>Top {label} ops by self time</h2>'
            '<p class="hint">Self time excludes the ops nested inside; total includes them.</p>')
    if not ops:
        return head + '<p class="hint">No ops in this trace.</p></section>'
    shown = sum(o.self_ns for o in ops) or 1
    shares = [format_share(o.self_ns / shown if o.share is None else o.share) for o in ops]
    ranked = len({o.rank for o in ops}) > 1
    color = {HOST: "#4e79a7", DEVICE: "#59a14f", SYNC: "#b07aa1"}[kind]
    bars = [Bar(shorten(o.name, 44) if not ranked else f"{shorten(o.name, 34)} (rank {o.rank})", o.self_ns, color,
                f"{o.name}\nself {format_ns(o.self_ns)}, total {format_ns(o.total_ns)}, {o.count} call(s)",
                note=share) for o, share in list(zip(ops, shares))[:MAX_OPS_CHART]]
    chart = hbar_chart(f"{kind}-ops", f"Top {label} ops (self time)", bars, format_ns)
    table = _table(
        ("op", *(["rank"] if ranked else []), "calls", "self", "self %", "total", "mean self"),
        [(_name(o.name), *([str(o.rank)] if ranked else []), str(o.count), format_ns(o.self_ns), share,
          format_ns(o.total_ns), format_ns(o.self_ns / o.count if o.count else 0)) for o, share in zip(ops, shares)],
    )
    return head + chart + table + "</section>"


def _host_device_ops_section(summary: Summary) -> str:
    ops = summary.ops_of(HOST_AND_DEVICE)
    if not ops:
        return ""
    table = _table(
        ("op", "calls", "self host", "total host", "self device", "total device"),
        [(_name(o.name), str(o.count), format_ns(o.self_host_ns), format_ns(o.total_host_ns),
          format_ns(o.self_device_ns), format_ns(o.total_device_ns)) for o in ops],
    )
    return ('<section id="ops"><h2>Top ops</h2><p class="hint">The profiler\'s op table: each op timed on the '
            'host and on the device.</p>' + table + "</section>")


def _ranks_section(summary: Summary) -> str:
    if not summary.ranks:
        return ""
    rows = []
    for view in summary.ranks:
        straggling = [s.region for s in summary.stragglers.values() if s.rank == view.rank]
        rows.append((str(view.rank), "yes" if view.selected else "no", str(len(view.regions)),
                     format_ns(sum(r.self_ns for r in view.regions)), escape(", ".join(straggling)) or MISSING))
    table = _table(("rank", "profiled", "regions", "self time", "slowest rank of"), rows)
    stragglers = _table(
        ("region", "slowest rank", "total", "median rank", "excess"),
        [(escape(s.region), str(s.rank), format_ns(s.total_ns), format_ns(s.median_ns), f"{s.excess:+.1%}")
         for s in summary.stragglers.values()],
    ) if summary.stragglers else ""
    return ('<section id="ranks"><h2>Ranks</h2><p class="hint">Every rank of the job; a straggler is the slowest '
            'rank of a region run by two or more ranks.</p>' + table + stragglers + "</section>")


def _device_time_section(summary: Summary) -> str:
    entries = summary.device_time
    if not entries:
        return ""
    series = [Series(COMPUTE, KIND_COLORS["compute"]), Series(COMM_ALONE, KIND_COLORS["communication"]),
              Series(MEMORY_ALONE, KIND_COLORS["memory"]), Series(IDLE, IDLE_COLOR)]
    bars = [StackedBar(_device_name(d), _breakdown(d), float(d.span_ns),
                       f"{_device_name(d)}: span {format_ns(d.span_ns)}, busy {format_ns(d.busy_ns)}")
            for d in entries]
    chart = stacked_bars("device-time", "Device time by kind (share of each device's span)", bars, series,
                         format_ns)
    table = _table(
        ("device", "span", "busy", "idle", "idle %", "compute", "communication", "memory", "comm overlapped"),
        [(escape(_device_name(d)), format_ns(d.span_ns),
          format_ns(d.busy_ns), format_ns(d.idle_ns), format_share(d.idle_share), format_ns(d.compute_ns),
          format_ns(d.communication_ns), format_ns(d.memory_ns), format_share(d.comm_overlapped_share))
         for d in entries],
    )
    return ('<section id="device-time"><h2>Device time</h2><p class="hint">Busy time counts overlapping kernels '
            'once; idle is the rest of the span from first to last kernel. The bar splits the span: compute '
            '(with whatever ran beside it), communication while no compute ran, memory copies while nothing '
            'else ran, idle.</p>' + chart + table + _kernel_types(entries) + _streams(entries)
            + _device_steps(entries) + "</section>")


def _device_name(entry: DeviceTime) -> str:
    return entry.device if entry.rank is None else f"rank {entry.rank} {entry.device}"


def _breakdown(entry: DeviceTime) -> dict[str, float]:
    """The span in four parts that add up to it, from the kernel-type combinations."""
    parts = dict.fromkeys((COMPUTE, COMM_ALONE, MEMORY_ALONE), 0.0)
    for row in entry.kernel_types:
        kinds = set(row.kind.split("+"))
        part = COMPUTE if "compute" in kinds else COMM_ALONE if "communication" in kinds else MEMORY_ALONE
        parts[part] += row.time_ns
    parts[IDLE] = float(entry.idle_ns)
    return parts


def _kernel_types(entries: list[DeviceTime]) -> str:
    rows = [(escape(_device_name(d)), escape(k.kind), format_ns(k.time_ns), format_share(k.share),
             f"{k.count:,}" if k.count else MISSING, format_ns(k.total_ns) if k.count else MISSING)
            for d in entries for k in d.kernel_types]
    if not rows:
        return ""
    return ('<h3 id="kernel-types">Kernel types</h3><p class="hint">Busy time split by the kinds running at '
            'once (<i>compute+communication</i>: both); shares of busy time. Count and summed duration are '
            'given for the single kinds.</p>'
            + _table(("device", "kinds running", "time", "share of busy", "activities", "summed"), rows))


def _streams(entries: list[DeviceTime]) -> str:
    streams = [(d, s) for d in entries for s in d.streams]
    if not streams:
        return ""
    series = [Series("busy", KIND_COLORS["compute"]), Series("idle", IDLE_COLOR)]
    bars = [StackedBar(f"{_device_name(d)} stream {s.stream}", {"busy": float(s.busy_ns), "idle": float(s.idle_ns)},
                       float(s.busy_ns + s.idle_ns), f"{s.activities:,} activities") for d, s in streams]
    chart = stacked_bars("streams", "Streams: busy and idle within each stream's span", bars, series, format_ns,
                         label_chars=34)
    table = _table(
        ("stream", "activities", "busy", "idle", "busy %", "host wait"),
        [(escape(f"{_device_name(d)} stream {s.stream}"), f"{s.activities:,}", format_ns(s.busy_ns),
          format_ns(s.idle_ns), format_share(s.busy_ns / (s.busy_ns + s.idle_ns) if s.busy_ns + s.idle_ns else None),
          format_ns(s.host_wait_ns)) for d, s in streams],
    )
    return ('<h3 id="streams">Streams</h3><p class="hint">Each stream from its first to its last activity; host '
            'wait is the idle time that ended with an activity launched after the previous one had '
            'finished (the device waited for the host).</p>' + chart + table)


def _device_steps(entries: list[DeviceTime]) -> str:
    rows = [(escape(_device_name(d)), str(s.step), format_ns(s.span_ns), format_ns(s.busy_ns),
             format_share(s.idle_share), format_ns(s.compute_ns), format_ns(s.communication_ns),
             format_ns(s.memory_ns), format_share(s.comm_overlapped_share)) for d in entries for s in d.steps]
    if not rows:
        return ""
    return ('<h3 id="device-steps">Device time per step</h3><p class="hint">The activities launched during each '
            'host step.</p>' + _table(("device", "step", "span", "busy", "idle %", "compute", "communication",
                                       "memory", "comm overlapped"), rows))


def _timeline_section(summary: Summary, colors: dict[str, str]) -> str:
    if not summary.timelines:
        return ""
    charts = "".join(timeline_chart("timeline", t, format_ns, colors) for t in summary.timelines)
    return ('<section id="timeline"><h2>Timeline of the median step</h2><p class="hint">The step of median '
            'duration of each trace: per host thread its regions (by depth) above its outermost ops, per '
            'device stream the activities launched during the step, coloured by kind. Hover a mark for its '
            'full name and times.</p>' + charts + "</section>")


def _memory_section(summary: Summary) -> str:
    if not summary.memory:
        return ""
    rows = [(escape(m.device), format_bytes(m.peak_allocated), format_bytes(m.peak_reserved)) for m in summary.memory]
    return ('<section id="memory"><h2>Memory peaks</h2><p class="hint">Largest totals the allocator reported '
            'during the trace.</p>' + _table(("device", "peak allocated", "peak reserved"), rows) + "</section>")


def _metadata_section(summary: Summary) -> str:
    meta, run = summary.metadata, summary.run
    ranks = [view.rank for view in summary.ranks] or [r for r in meta.get("ranks") or [] if isinstance(r, int)]
    facts: list[tuple[str, Any]] = [
        ("backend", run.backend),
        ("versions", meta.get("versions")),
        ("run id", run.run_id),
        ("ranks", ", ".join(str(r) for r in ranks) or None),
        ("world size", run.world_size),
        ("host", run.host),
        ("pid", run.pid),
        ("started", _started(run)),
        ("steps run", run.steps),
        ("options", meta.get("options")),
        ("backend options", meta.get("backend_options")),
    ]
    trace = meta.get("trace") or {}
    facts += [(f"trace {key}", value) for key, value in trace.items()]
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{_value(v)}</dd>" for k, v in facts if v not in (None, "", {}, []))
    sources = _table(
        ("trace file", "layout", "size", "events", "rank", "session summary"),
        [(escape(s.path), s.layout, format_bytes(s.size_bytes), f"{s.events:,}",
          MISSING if s.rank is None else str(s.rank),
          escape(os.path.basename(s.session_summary)) if s.session_summary else MISSING) for s in summary.sources],
    ) if summary.sources else ""
    return ('<section id="metadata"><h2>Run</h2><p class="hint">From the session summary written next to the '
            f'traces (when present) and the traces themselves.</p><dl>{rows}</dl>{sources}</section>')


# -- helpers ---------------------------------------------------------------------------
def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Cells are already escaped HTML."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _name(name: str) -> str:
    """A table cell's name: shortened to :data:`NAME_CHARS`, the full name on hover."""
    short = shorten(name, NAME_CHARS)
    return escape(name) if short == name else f'<span title="{escape(name)}">{escape(short)}</span>'


def _swatch(color: str) -> str:
    return f'<span class="swatch" style="background:{escape(color)}"></span>'


def _value(value: Any) -> str:
    if isinstance(value, dict):
        flat = all(not isinstance(v, (dict, list)) for v in value.values())
        if flat:
            return escape(", ".join(f"{k}={v}" for k, v in value.items()))
    if isinstance(value, (dict, list)):
        return f"<pre>{escape(json.dumps(value, indent=1, default=str))}</pre>"
    return escape(str(value))
