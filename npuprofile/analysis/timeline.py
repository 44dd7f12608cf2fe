"""The timeline of one step: bounded rows of intervals for the host threads and device streams.

A trace's median step (by duration; the lower one of an even count) is drawn
in the report as a timeline. :class:`TimelineBuilder` keeps what it needs, in
bounded memory whatever the step holds:

- a host thread's row holds the step's regions (with their nesting depth) and
  its outermost ops; a device stream's row holds the activities launched
  during the step, by kind;
- intervals shorter than a *slot* (the step's duration over :data:`SLOTS`)
  that lie within a slot of each other merge into one item (``count`` says
  how many), so a burst of tiny kernels costs one item;
- a row keeps at most :data:`MAX_ROW_ITEMS` items (the rest are counted as
  dropped), and a timeline at most :data:`MAX_HOST_ROWS` host rows and
  :data:`MAX_DEVICE_ROWS` stream rows, the busiest ones.

Times come in as microseconds (as the aggregator keeps them) and leave as
integer nanoseconds from the step's start.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from npuprofile.summary.model import StepTimeline, TimelineItem, TimelineRow

__all__ = ["TimelineBuilder", "median_step", "SLOTS", "MAX_ROW_ITEMS", "MAX_HOST_ROWS", "MAX_DEVICE_ROWS"]

#: A step is cut into this many slots; intervals shorter than one merge with their close neighbours.
SLOTS = 1200
#: Items one row keeps at most.
MAX_ROW_ITEMS = 1500
#: Host-thread and device-stream rows a timeline keeps at most (the busiest).
MAX_HOST_ROWS = 12
MAX_DEVICE_ROWS = 24
#: A merged item stops taking in neighbours once it spans this many slots.
_MERGE_SPAN = 2

HOST_ROW, DEVICE_ROW = "host", "device"


def median_step(steps: Sequence[tuple[int, float, float]]) -> tuple[int, float, float] | None:
    """The step of median duration among ``(number, ts, dur)`` (the shorter one of the middle two), or None."""
    if not steps:
        return None
    ranked = sorted(steps, key=lambda s: (s[2], s[0]))
    return ranked[(len(ranked) - 1) // 2]


class _Row:
    """One row's items as lists ``[start, end, name, kind, level, count, longest]`` (microseconds)."""

    __slots__ = ("lane", "kind", "device", "items", "last", "merged", "dropped", "busy")

    def __init__(self, lane: str, kind: str, device: str | None) -> None:
        self.lane = lane
        self.kind = kind
        self.device = device
        self.items: list[list[Any]] = []
        self.last: dict[int, list[Any]] = {}
        self.merged = 0
        self.dropped = 0
        self.busy = 0.0

    def add(self, start: float, end: float, name: str, kind: str, level: int, slot: float) -> None:
        dur = end - start
        if level == 0:
            self.busy += dur
        last = self.last.get(level)
        if (last is not None and dur < slot and last[6] < slot and start - last[1] < slot
                and last[1] - last[0] < _MERGE_SPAN * slot):
            if last[5] == 1:
                self.merged += 1
            self.merged += 1
            last[5] += 1
            if end > last[1]:
                last[1] = end
            if dur > last[6]:
                last[2], last[3], last[6] = name, kind, dur
            return
        if len(self.items) >= MAX_ROW_ITEMS:
            self.dropped += 1
            return
        item = [start, end, name, kind, level, 1, dur]
        self.items.append(item)
        self.last[level] = item

    def result(self, origin: float) -> TimelineRow:
        items = [TimelineItem(_ns(start - origin), _ns(end - start), name, kind, level, count)
                 for start, end, name, kind, level, count, _ in self.items]
        return TimelineRow(self.lane, self.kind, items, self.device, self.merged, self.dropped)


class TimelineBuilder:
    """Rows of one step ``(number, ts, dur)``: feed host lanes with :meth:`host_lane`, activities with :meth:`device`."""

    def __init__(self, step: tuple[int, float, float]) -> None:
        self.number, self.start, dur = step
        self.end = self.start + dur
        self.slot = dur / SLOTS if dur > 0 else 0.0
        self.host_rows: list[_Row] = []
        self.device_rows: dict[tuple[str, str], _Row] = {}

    def launched_in_step(self, moment: float) -> bool:
        """Whether an activity launched (or, without a known launch, started) at ``moment`` belongs to the step."""
        return self.start <= moment < self.end

    def host_lane(self, lane: str, records: Iterable[tuple[Any, ...]], names: Sequence[str],
                  kinds: Sequence[int], op: int, region: int) -> None:
        """One host thread's records in start order (``(ts, -dur, seq, kind_id, ...)``): its regions and outermost ops.

        ``kinds[kind_id]`` is compared with ``op`` and ``region`` (the kinds of :mod:`.nesting`).
        """
        row = _Row(lane, HOST_ROW, None)
        start, stop, slot = self.start, self.end, self.slot
        regions: list[float] = []  # ends of the open regions
        op_end = float("-inf")  # end of the open outermost op
        for record in records:
            ts = record[0]
            if ts < start:
                continue
            if ts >= stop:
                break
            kind = kinds[record[3]]
            if kind != op and kind != region:
                continue
            end = ts - record[1]
            if kind == region:
                while regions and regions[-1] <= ts:
                    regions.pop()
                row.add(ts, end, names[record[3]], "region", 1 + len(regions), slot)
                regions.append(end)
            elif ts >= op_end:
                row.add(ts, end, names[record[3]], "op", 0, slot)
                op_end = end
        if row.items:
            self.host_rows.append(row)

    def device(self, device: str, stream: str, start: float, end: float, name: str, kind: str) -> None:
        """One activity of ``device``'s ``stream`` launched during the step (feed them in start order)."""
        key = (device, stream)
        row = self.device_rows.get(key)
        if row is None:
            row = self.device_rows[key] = _Row(f"{device} stream {stream}", DEVICE_ROW, device)
        row.add(start, end, name, kind, 0, self.slot)

    def result(self, rank: int | None = None) -> StepTimeline:
        """The timeline (rows by busy time within each kind, the busiest kept)."""
        host = sorted(self.host_rows, key=lambda r: -r.busy)
        device = sorted(self.device_rows.values(), key=lambda r: -r.busy)
        kept_device = sorted(device[:MAX_DEVICE_ROWS], key=lambda r: (r.device or "", _stream_order(r.lane)))
        dropped = max(0, len(host) - MAX_HOST_ROWS) + max(0, len(device) - MAX_DEVICE_ROWS)
        rows = [row.result(self.start) for row in (*host[:MAX_HOST_ROWS], *kept_device)]
        return StepTimeline(self.number, _ns(self.end - self.start), rows, rank=rank, dropped_rows=dropped)


def _stream_order(lane: str) -> tuple[int, str]:
    tail = lane.rsplit(" ", 1)[-1]
    return (int(tail), lane) if tail.isdigit() else (1 << 62, lane)


def _ns(us: float) -> int:
    return int(round(us * 1000))
