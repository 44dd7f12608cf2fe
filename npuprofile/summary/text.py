"""The text renderer: a summary as plain-text tables, laid out for what produced it.

A session summary is a region table with the full distribution; a trace summary
adds steps, top ops per clock and memory peaks; a gathered summary adds a
per-rank table and its stragglers; a bench result leads with one line about the
measured call. Device time, when known, follows as tables of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from npuprofile.sessions.coords import format_coords
from npuprofile.sessions.files import atomic_write_text
from npuprofile.summary.model import ALL_RANKS, BENCH, DEVICE, HOST, HOST_AND_DEVICE, SYNC, TRACE, RegionRow, Summary

if TYPE_CHECKING:
    from npuprofile.summary.model import DeviceTime, RunInfo

MISSING = "–"
DISTRIBUTION_COLUMNS = ("count", "total", "self", "mean", "std", "min", "max",
                        *(f"p{q}" for q in RegionRow.PERCENTILES))


def render(summary: Summary, path: str | Path | None = None) -> str:
    """The whole summary as readable text; also written atomically to ``path`` when given."""
    layout = _LAYOUTS.get(summary.kind, _session)
    text = "\n".join([*layout(summary), *_device_time(summary)])
    if path is not None:
        atomic_write_text(Path(path), text + "\n")
    return text


# -- formatting ----------------------------------------------------------------------------
def format_ns(ns: float | None) -> str:
    """A duration in the unit that reads best (ns, us, ms, s); ``–`` when unknown."""
    if ns is None:
        return MISSING
    if ns < 1e3:
        return f"{ns:.0f}ns"
    if ns < 1e6:
        return f"{ns / 1e3:.2f}us"
    if ns < 1e9:
        return f"{ns / 1e6:.2f}ms"
    return f"{ns / 1e9:.3f}s"


def format_bytes(count: float) -> str:
    """A size in the unit that reads best (B, KB, MB, GB; powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"  # pragma: no cover - the loop returns at GB


def format_share(share: float | None) -> str:
    """A fraction as a percentage with one decimal; ``–`` when unknown."""
    return MISSING if share is None else f"{100 * share:.1f}%"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: first column left-aligned, the rest right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row)]

    def line(cells: Sequence[str]) -> str:
        parts = [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


# -- tables ---------------------------------------------------------------------------------
def headline(summary: Summary) -> str:
    """One line: what was summarized and the run it came from."""
    run = summary.run
    steps = summary.steps
    if summary.kind == TRACE:
        events = sum(s.events for s in summary.sources)
        size = sum(s.size_bytes for s in summary.sources)
        parts = [f"npuprofile trace summary: {len(summary.sources)} trace(s), {format_bytes(size)}, {events} events"]
        if run.backend:
            parts.append(f"backend={run.backend}")
        ranks = summary.metadata.get("ranks") or []
        if ranks:
            parts.append("ranks=" + ",".join(str(r) for r in ranks))
        if steps:
            parts.append(f"steps={len(steps)} (mean {format_ns(summary.step_time_ns / len(steps))})")
        return ", ".join(parts)
    if summary.kind == ALL_RANKS:
        profiled = sum(view.selected for view in summary.ranks)
        world = run.world_size if run.world_size is not None else len(summary.ranks)
        head = (f"npuprofile summary: backend={run.backend or '?'} run_id={run.run_id or '?'} "
                f"ranks={profiled}/{world} (all ranks)")
        if steps:
            head += f" steps={len(steps)} (slowest rank, mean {format_ns(summary.step_time_ns / len(steps))})"
        return head
    head = f"npuprofile summary: backend={run.backend or '?'}"
    if run.rank is not None:
        head += f" rank={run.rank}/{run.world_size if run.world_size is not None else 1}"
    if run.coords:
        head += " " + " ".join(f"{key}={value}" for key, value in run.coords.items())
    if run.stage:
        head += f" stage={run.stage}"
    if steps:
        head += f" steps={len(steps)} (mean {format_ns(summary.step_time_ns / len(steps))})"
    return head


def region_table(summary: Summary) -> str:
    """The regions as a table: the full distribution where the rows carry one, else the share of step time."""
    regions = summary.regions
    if any(r.has_distribution for r in regions):
        rows = [[r.name, str(r.count), *(format_ns(v) for v in (
            r.total_ns, r.self_ns, r.mean_ns, r.std_ns, r.min_ns, r.max_ns,
            *(getattr(r, f"p{q}_ns") for q in RegionRow.PERCENTILES)))] for r in regions]
        return render_table(("region", *DISTRIBUTION_COLUMNS), rows)
    rows = [[r.name, str(r.count), format_ns(r.total_ns), format_ns(r.self_ns), format_share(r.share)]
            for r in regions]
    return render_table(("region", "count", "total", "self", "share"), rows)


def op_table(summary: Summary, kind: str | None = None) -> str:
    """The ops of one kind (``"cpu"``, ``"device"``, ``"sync"``) with their share of self time, or the host+device table.

    A rank column appears when the rows come from more than one rank.
    """
    if kind is None or kind == HOST_AND_DEVICE:
        rows = [[o.name[:60], str(o.count), format_ns(o.self_host_ns), format_ns(o.total_host_ns),
                 format_ns(o.self_device_ns), format_ns(o.total_device_ns)] for o in summary.ops_of(HOST_AND_DEVICE)]
        return render_table(("op", "count", "self host", "total host", "self device", "total device"), rows)
    ops = summary.ops_of(kind)
    shown = sum(o.self_ns for o in ops) or 1  # for rows whose producer knew no share: of the rows shown
    ranked = len({o.rank for o in ops}) > 1
    rows = [[*([str(o.rank)] if ranked else []), o.name[:70], str(o.count), format_ns(o.self_ns),
             format_share(o.self_ns / shown if o.share is None else o.share), format_ns(o.total_ns)] for o in ops]
    return render_table((*(["rank"] if ranked else []), f"{kind} op", "count", "self", "self %", "total"), rows)


def step_table(summary: Summary, columns: int = 6) -> str:
    """Steps with the time of the ``columns`` regions of most self time, and the time outside them all.

    Steps of several traces are labelled with their rank and, where known, their start.
    """
    names = [r.name for r in sorted(summary.regions, key=lambda r: r.self_ns, reverse=True)[:columns]]
    multi = len({s.source for s in summary.steps}) > 1
    starts = multi and any(s.start_ns is not None for s in summary.steps)
    rows = []
    for s in summary.steps:
        label = f"{s.index}" if not multi else f"{s.index} (rank {s.rank if s.rank is not None else s.source})"
        rows.append([label, *([format_ns(s.start_ns)] if starts else []), format_ns(s.duration_ns),
                     *(format_ns(s.regions.get(n, 0)) for n in names), format_ns(s.other_ns)])
    return render_table(("step", *(["start"] if starts else []), "duration", *names, "other"), rows)


def rank_table(summary: Summary) -> str:
    """One row per region and rank; the slowest rank of each region is flagged."""
    rows = []
    coords = {view.rank: _coords_label(view.metadata.get("coords")) for view in summary.ranks}
    with_coords = any(coords.values())
    for aggregate in summary.regions:
        straggler = summary.stragglers.get(aggregate.name)
        for view in summary.ranks:
            row = next((r for r in view.regions if r.name == aggregate.name), None)
            if row is None:
                continue
            versus = ""
            if straggler is not None and straggler.median_ns > 0:
                versus = f"{row.total_ns / straggler.median_ns - 1.0:+.1%}"
            flag = "slowest" if straggler is not None and straggler.rank == view.rank else ""
            place = [coords[view.rank] or "-"] if with_coords else []
            rows.append([aggregate.name, str(view.rank), *place, str(row.count), format_ns(row.total_ns),
                         format_ns(row.mean_ns), format_ns(row.max_ns), versus, flag])
    header = ("region", "rank", *(("coords",) if with_coords else ()), "count", "total", "mean", "max", "vs median", "")
    return render_table(header, rows)


def _coords_label(coords: Any) -> str:
    """``tp0-dp1`` for a rank's coordinates (empty when it has none)."""
    return format_coords(tuple(coords.items())) if isinstance(coords, dict) else ""


def memory_table(summary: Summary) -> str:
    """Peak allocated and reserved memory per device."""
    rows = [[m.device, format_bytes(m.peak_allocated), format_bytes(m.peak_reserved)] for m in summary.memory]
    return render_table(("device", "allocated", "reserved"), rows)


def compiled_regions(run: RunInfo) -> str:
    """The regions inside compiled graphs, grouped by the compiled functions they were seen in."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for name in run.compiled_regions:
        groups.setdefault(tuple(run.compiled_regions_where.get(name, ())), []).append(name)
    return "; ".join(
        ", ".join(names) + (f" (in {', '.join(places)})" if places else "") for places, names in groups.items()
    )

# -- layouts: the lines of each kind of summary ------------------------------------------------
def _session(summary: Summary) -> list[str]:
    run = summary.run
    parts = [headline(summary)]
    if run.degraded:
        parts.append("DEGRADED: " + "; ".join(run.degraded))
    parts.append(region_table(summary) if summary.regions else "(no regions recorded)")
    if run.compiled_regions:
        parts.append("inside torch.compile graphs, not timed: " + compiled_regions(run))
    if summary.ops_of(HOST_AND_DEVICE):
        parts += ["", op_table(summary)]
    return parts


def _bench(summary: Summary) -> list[str]:
    settings: dict[str, Any] = summary.metadata.get("bench") or {}
    if summary.name is None or summary.name not in summary:
        return _session(summary)
    row = summary.region(summary.name)
    head = (f"bench {summary.name!r}: {row.count} calls (+{settings.get('warmup', 0)} warm-up), "
            f"mean {format_ns(row.mean_ns)}, min {format_ns(row.min_ns)}, p50 {format_ns(row.p50_ns)}, "
            f"clock={settings.get('clock', '?')}")
    return [head, *_session(summary)]


def _all_ranks(summary: Summary) -> list[str]:
    parts = [headline(summary)]
    degraded = [f"rank {view.rank}: {d}" for view in summary.ranks for d in view.metadata.get("degraded") or ()]
    if degraded:
        parts.append("DEGRADED: " + "; ".join(degraded))
    if not summary.regions:
        parts.append("(no regions recorded)")
        return parts
    parts += ["all ranks:", region_table(summary), "", "per rank:", rank_table(summary)]
    if summary.stragglers:
        parts.append("")
        parts += [f"straggler: {s.region!r} is slowest on rank {s.rank} "
                  f"({format_ns(s.total_ns)}, {s.excess:+.1%} vs the median rank)" for s in summary.stragglers.values()]
    if summary.ops_of(HOST_AND_DEVICE):
        parts += ["", op_table(summary)]
    return parts


def _trace(summary: Summary) -> list[str]:
    parts = [headline(summary)]
    if summary.late_events:
        parts.append(f"note: {summary.late_events} events arrived far out of order; their nesting was not resolved")
    sections: list[tuple[str, Sequence[Any], Callable[[], str]]] = [
        ("Regions (self excludes nested regions; share = self / step time)", summary.regions,
         lambda: region_table(summary)),
        ("Steps", summary.steps, lambda: step_table(summary)),
        ("Top CPU ops by self time", summary.ops_of(HOST), lambda: op_table(summary, HOST)),
        ("Top device ops by self time", summary.ops_of(DEVICE), lambda: op_table(summary, DEVICE)),
        ("Synchronization markers on device lanes", summary.ops_of(SYNC), lambda: op_table(summary, SYNC)),
        ("Memory peaks", summary.memory, lambda: memory_table(summary)),
    ]
    for title, rows, table in sections:
        if rows:
            parts += ["", title, table()]
    if not (summary.regions or summary.steps or summary.ops):
        parts.append("(the trace holds no complete events)")
    return parts


_LAYOUTS: dict[str, Callable[[Summary], list[str]]] = {TRACE: _trace, ALL_RANKS: _all_ranks, BENCH: _bench}


def device_time_table(summary: Summary) -> str:
    """Device time per rank and device, as shares of each device's span."""
    def of_span(part: int, whole: int) -> str:
        return format_share(part / whole if whole else None)

    rows = [[MISSING if d.rank is None else str(d.rank), d.device, format_ns(d.span_ns), of_span(d.busy_ns, d.span_ns),
             of_span(d.idle_ns, d.span_ns), of_span(d.compute_ns, d.span_ns), of_span(d.communication_ns, d.span_ns),
             of_span(d.memory_ns, d.span_ns), format_share(d.comm_overlapped_share)] for d in summary.device_time]
    return render_table(("rank", "device", "span", "busy", "idle", "compute", "communication", "memory",
                         "comm overlapped"), rows)


def _device_time(summary: Summary) -> list[str]:
    """Device time after any layout: per device, then its busy time by kinds at once, then per stream."""
    entries = summary.device_time
    if not entries:
        return []
    parts = ["", "Device time (shares of each device's span)", device_time_table(summary)]
    kinds = [[_owner(d), k.kind, format_ns(k.time_ns), format_share(k.share)] for d in entries for k in d.kernel_types]
    if kinds:
        parts += ["", "Device busy time by kinds running at once",
                  render_table(("device", "kinds", "time", "of busy"), kinds)]
    streams = [[_owner(d), s.stream, str(s.activities), format_ns(s.busy_ns), format_ns(s.idle_ns),
                format_ns(s.host_wait_ns)] for d in entries for s in d.streams]
    if streams:
        parts += ["", "Device streams",
                  render_table(("device", "stream", "activities", "busy", "idle", "host wait"), streams)]
    return parts


def _owner(entry: DeviceTime) -> str:
    return entry.device if entry.rank is None else f"rank {entry.rank} {entry.device}"
