"""What a backend's table reader hands the analysis: device activities, op totals, per-step figures.

Some backends' own tools write tables beside their traces (per-kernel rows,
per-op totals, per-step time splits). A backend that has them names them in its
:class:`~npuprofile.backends.base.TraceLayout` (``table_globs``) together with a
reader (``table_reader``) that turns those files into these plain values; the
analysis then treats them like a trace's device lanes. Times are microseconds.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

__all__ = ["TableActivity", "TableOp", "TableStep", "DeviceTables"]


@dataclasses.dataclass(frozen=True)
class TableActivity:
    """One device activity (a kernel, a collective, a copy) with its start and duration."""

    name: str
    start_us: float
    dur_us: float
    #: ``"compute"``, ``"communication"`` or ``"memory"``.
    kind: str
    stream: str
    step: int | None = None
    device: str | None = None


@dataclasses.dataclass(frozen=True)
class TableOp:
    """The totals of one op type, as the backend's tools summed them."""

    name: str
    count: int
    total_us: float


@dataclasses.dataclass(frozen=True)
class TableStep:
    """How the backend's tools split one step's device time (``step`` None: the whole capture)."""

    step: int | None
    device: str | None
    compute_us: float
    communication_us: float
    communication_not_overlapped_us: float
    idle_us: float


@dataclasses.dataclass
class DeviceTables:
    """Everything a reader found in a set of table files."""

    files: list[Path] = dataclasses.field(default_factory=list)
    activities: list[TableActivity] = dataclasses.field(default_factory=list)
    ops: list[TableOp] = dataclasses.field(default_factory=list)
    steps: list[TableStep] = dataclasses.field(default_factory=list)
