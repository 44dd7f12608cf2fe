"""The CSV renderer: regions, per-rank regions, steps and ops of a summary in one table.

A ``section`` column tells the rows apart (``region``, ``rank_region``,
``step``, ``op``); every section fills the columns it has and leaves the others
empty. Numbers are written exactly as the model holds them (nanoseconds;
shares as fractions). Memory and device time, which fit no row of this table,
are in the JSON.
"""

from __future__ import annotations

import csv as _csv
import io
from pathlib import Path
from typing import Any, Iterator

from npuprofile.sessions.files import atomic_write_text
from npuprofile.summary.model import RegionRow, Summary

REGION_FIELDS = ("count", "total_ns", "self_ns", "share", "mean_ns", "std_ns", "min_ns", "max_ns",
                 *(f"p{q}_ns" for q in RegionRow.PERCENTILES))
FIELDS = ("section", "name", "kind", "rank", "step", *REGION_FIELDS)


def render(summary: Summary, path: str | Path | None = None) -> str:
    """The summary as CSV text; also written atomically to ``path`` when given."""
    buffer = io.StringIO()
    writer = _csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows(summary))
    text = buffer.getvalue()
    if path is not None:
        atomic_write_text(Path(path), text)
    return text


def rows(summary: Summary) -> Iterator[dict[str, Any]]:
    """The table's rows as dicts (``None`` for an empty cell)."""
    for region in summary.regions:
        yield _region("region", region, None)
    for view in summary.ranks:
        for region in view.regions:
            yield _region("rank_region", region, view.rank)
    for step in summary.steps:
        yield {"section": "step", "name": f"ProfilerStep#{step.index}", "kind": "step", "rank": step.rank,
               "step": step.index, "count": 1, "total_ns": step.duration_ns, "self_ns": step.other_ns}
    for op in summary.ops:
        yield {"section": "op", "name": op.name, "kind": op.kind, "rank": op.rank, "count": op.count,
               "total_ns": op.total_ns, "self_ns": op.self_ns, "share": op.share}


def _region(section: str, row: RegionRow, rank: int | None) -> dict[str, Any]:
    return {"section": section, "name": row.name, "kind": "region", "rank": rank,
            **{field: getattr(row, field) for field in REGION_FIELDS}}
