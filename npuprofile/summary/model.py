"""What ``Session.summary()`` returns: region statistics, top ops, per-step times, run metadata."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

from npuprofile.backends.base import OpStat
from npuprofile.core.stats import PERCENTILES, RegionStats
from npuprofile.sessions.files import atomic_write_text


@dataclasses.dataclass(frozen=True)
class StepStat:
    """One step: its duration and the total time of each region inside it (nanoseconds)."""

    index: int
    duration_ns: int
    regions: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return dataclasses.asdict(self)


def dumps_json(data: Any, indent: int = 2) -> str:
    """JSON text of ``data`` (orjson when present: summaries are written on the way out of a session)."""
    try:
        import orjson
    except ImportError:  # pragma: no cover - orjson is a declared dependency
        import json

        return json.dumps(data, indent=indent or None, default=str)
    option = orjson.OPT_INDENT_2 if indent else 0
    return orjson.dumps(data, option=option | orjson.OPT_NON_STR_KEYS, default=str).decode()


def format_ns(ns: float) -> str:
    """A duration in the unit that reads best (ns, us, ms, s)."""
    if ns < 1e3:
        return f"{ns:.0f}ns"
    if ns < 1e6:
        return f"{ns / 1e3:.2f}us"
    if ns < 1e9:
        return f"{ns / 1e6:.2f}ms"
    return f"{ns / 1e9:.3f}s"


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


REGION_COLUMNS = ("count", "total", "self", "mean", "std", "min", "max", *(f"p{q}" for q in PERCENTILES))


class Summary:
    """Region statistics of one session (and, when traced, its top operators).

    ``str(summary)`` is a readable table; :meth:`to_dict` is JSON-ready;
    :meth:`to_json` and :meth:`to_csv` write files.
    """

    def __init__(
        self,
        regions: Sequence[RegionStats],
        ops: Sequence[OpStat] = (),
        steps: Sequence[StepStat] = (),
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.regions = sorted(regions, key=lambda r: r.total_ns, reverse=True)
        self.ops = list(ops)
        self.steps = list(steps)
        self.metadata = dict(metadata or {})

    def region(self, name: str) -> RegionStats:
        """Statistics of one region by name (``KeyError`` if it never ran)."""
        for stats in self.regions:
            if stats.name == name:
                return stats
        raise KeyError(f"no region named {name!r}; regions: {[r.name for r in self.regions]}")

    def __contains__(self, name: object) -> bool:
        return any(stats.name == name for stats in self.regions)

    def to_dict(self) -> dict[str, Any]:
        """Everything, as plain JSON types (durations in nanoseconds)."""
        return {
            "metadata": self.metadata,
            "regions": [r.to_dict() for r in self.regions],
            "ops": [o.to_dict() for o in self.ops],
            "steps": [s.to_dict() for s in self.steps],
        }

    def to_json(self, path: str | Path | None = None, *, indent: int = 2) -> str:
        """The summary as JSON; also written atomically to ``path`` when given."""
        text = dumps_json(self.to_dict(), indent=indent)
        if path is not None:
            atomic_write_text(Path(path), text + "\n")
        return text

    def to_csv(self, path: str | Path | None = None) -> str:
        """The region table as CSV (nanoseconds); also written atomically to ``path`` when given."""
        import csv
        import io

        buffer = io.StringIO()
        fields = ["name", "count", "total_ns", "self_ns", "mean_ns", "std_ns", "min_ns", "max_ns"]
        fields += [f"p{q}_ns" for q in PERCENTILES]
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for stats in self.regions:
            writer.writerow(stats.to_dict())
        text = buffer.getvalue()
        if path is not None:
            atomic_write_text(Path(path), text)
        return text

    def region_table(self) -> str:
        """The regions as a text table."""
        rows = []
        for r in self.regions:
            cells = [r.name, str(r.count), format_ns(r.total_ns), format_ns(r.self_ns), format_ns(r.mean_ns)]
            cells += [format_ns(r.std_ns), format_ns(r.min_ns), format_ns(r.max_ns)]
            cells += [format_ns(r.percentile(q)) for q in PERCENTILES]
            rows.append(cells)
        return render_table(("region", *REGION_COLUMNS), rows)

    def op_table(self) -> str:
        """The top operators as a text table."""
        rows = [
            [o.name[:60], str(o.count), format_ns(o.self_host_ns), format_ns(o.total_host_ns),
             format_ns(o.self_device_ns), format_ns(o.total_device_ns)]
            for o in self.ops
        ]
        return render_table(("op", "count", "self host", "total host", "self device", "total device"), rows)

    def __str__(self) -> str:
        meta = self.metadata
        head = f"npuprofile summary: backend={meta.get('backend', '?')}"
        if "rank" in meta:
            head += f" rank={meta['rank']}/{meta.get('world_size', 1)}"
        if self.steps:
            total = sum(s.duration_ns for s in self.steps)
            head += f" steps={len(self.steps)} (mean {format_ns(total / len(self.steps))})"
        parts = [head]
        if meta.get("degraded"):
            parts.append("DEGRADED: " + "; ".join(meta["degraded"]))
        parts.append(self.region_table() if self.regions else "(no regions recorded)")
        if meta.get("compiled_regions"):
            parts.append("inside torch.compile graphs, not timed: " + ", ".join(meta["compiled_regions"]))
        if self.ops:
            parts.append("")
            parts.append(self.op_table())
        return "\n".join(parts)

    def __repr__(self) -> str:
        return f"<Summary regions={len(self.regions)} ops={len(self.ops)} steps={len(self.steps)}>"
