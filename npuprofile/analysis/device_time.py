"""Where device time goes: busy, idle, compute, communication and memory per rank and device.

The definitions follow HolisticTraceAnalysis's temporal, kernel-type and
overlap breakdowns, so the figures can be checked against it (see
``docs/analysis.md``):

- the activities counted are the device's kernels, memcpys and memsets whose
  launching host call (matched by correlation id) started before the start of
  the last host step (``include_last_step``: up to its end); a trace with at
  most one host step counts every activity. An activity without a correlation
  id is counted when it itself starts within that window.
- ``span_ns`` runs from the first counted activity's start to the last one's
  end; ``busy_ns`` is the union of their intervals over all streams,
  ``idle_ns = span_ns - busy_ns``, ``idle_share = idle_ns / span_ns``;
- ``compute_ns``, ``communication_ns``, ``memory_ns`` are the unions of the
  activities of each kind; ``comm_overlapped_share`` is the time during which
  communication and compute ran at once, over ``communication_ns``;
- ``kernel_types``: the busy time split by which kinds ran at once
  (``compute``, ``compute+communication``, ...), each with its share of busy time;
- ``streams``: per stream, busy (union), idle (its span minus busy) and host
  wait (gaps that end with an activity launched after the previous one ended);
- ``steps``: the same figures for the activities launched in each host step.

:class:`DeviceTimeBuilder` takes the activities of one device in start order.
"""

from __future__ import annotations

import bisect
from array import array
from typing import Any, Sequence

from npuprofile.summary.model import DeviceTime, KernelTypeTime, StepDeviceTime, StreamTime

__all__ = ["DeviceTime", "StreamTime", "KernelTypeTime", "StepDeviceTime", "DeviceTimeBuilder", "KINDS"]

#: The kinds of device activity, in the order their combinations are named.
KINDS = ("compute", "communication", "memory")
_BIT = {kind: 1 << index for index, kind in enumerate(KINDS)}
_COMPUTE, _COMMUNICATION = _BIT["compute"], _BIT["communication"]


def _ns(us: float) -> int:
    return int(round(us * 1000))


class _Figures:
    """Span and per-kind unions of a set of activities given in order of start.

    Each kind's union is merged on the fly (an interval starting after the
    current one's end closes it); busy time is then the measure of the kinds'
    combinations, so no separate union over all kinds is kept.
    """

    __slots__ = ("first", "last", "open", "merged", "count", "summed", "_combos")

    def __init__(self) -> None:
        self.first: float | None = None
        self.last = 0.0
        #: per kind: [start, end] of the interval being merged, or None
        self.open: dict[str, list[float] | None] = dict.fromkeys(KINDS)
        # merged intervals as flat (start, end, start, end, ...) arrays: 16 bytes each, not a tuple's 100
        self.merged: dict[str, array[float]] = {kind: array("d") for kind in KINDS}
        self.count = dict.fromkeys(KINDS, 0)
        self.summed = dict.fromkeys(KINDS, 0.0)
        self._combos: dict[int, float] | None = None

    def add(self, start: float, end: float, kind: str) -> None:
        if self.first is None:
            self.first = start
        if end > self.last:
            self.last = end
        current = self.open[kind]
        if current is None:
            self.open[kind] = [start, end]
        elif start > current[1]:
            self.merged[kind].extend(current)
            current[0] = start
            current[1] = end
        elif end > current[1]:
            current[1] = end
        self.count[kind] += 1
        self.summed[kind] += end - start

    def close(self) -> None:
        for kind, current in self.open.items():
            if current is not None:
                self.merged[kind].extend(current)
                self.open[kind] = None

    @property
    def span(self) -> float:
        return 0.0 if self.first is None else self.last - self.first

    def union(self, kind: str) -> float:
        merged = self.merged[kind]
        return sum(end - start for start, end in zip(merged[0::2], merged[1::2]))

    def combinations(self) -> dict[int, float]:
        """Time per set of kinds running at once (a bit mask over :data:`KINDS`)."""
        if self._combos is not None:
            return self._combos
        points: list[tuple[float, int]] = []
        for kind, merged in self.merged.items():
            bit = _BIT[kind]
            for start, end in zip(merged[0::2], merged[1::2]):
                if end > start:  # an empty interval would end before it starts in the sweep
                    points.append((start, bit))
                    points.append((end, -bit))
        points.sort()
        measure: dict[int, float] = {}
        mask = 0
        previous = 0.0
        for time, change in points:
            if mask and time > previous:
                measure[mask] = measure.get(mask, 0.0) + time - previous
            mask += change
            previous = time
        self._combos = measure
        return measure

    @property
    def busy(self) -> float:
        return sum(self.combinations().values())

    def overlapped_share(self) -> float | None:
        communication = self.union("communication")
        if communication <= 0:
            return None
        both = sum(t for mask, t in self.combinations().items() if mask & _COMPUTE and mask & _COMMUNICATION)
        return both / communication


def _combo_name(mask: int) -> str:
    return "+".join(kind for kind in KINDS if mask & _BIT[kind])


class _Stream:
    """One stream's activities: their count, span, union (merged on the fly) and host wait."""

    __slots__ = ("count", "first", "start", "end", "busy", "host_wait")

    def __init__(self, start: float, end: float) -> None:
        self.count = 0
        self.first = self.start = start
        self.end = end
        self.busy = 0.0
        self.host_wait = 0.0


class DeviceTimeBuilder:
    """Device figures of one device: feed :meth:`add` every activity in order of start, then :meth:`result`.

    ``window_end``: activities launched at or after it are left out (None: all
    count). ``steps``: ``(number, start, end)`` of the host steps, for the per-step figures.
    """

    def __init__(self, window_end: float | None, steps: Sequence[tuple[int, float, float]],
                 include_end: bool = False) -> None:
        self.window_end = window_end
        self.include_end = include_end
        self.steps = sorted(steps, key=lambda s: s[1])
        self._starts = [s[1] for s in self.steps]
        self._ends = [s[2] for s in self.steps]
        self.figures = _Figures()
        self.streams: dict[Any, _Stream] = {}
        self.per_step: dict[int, _Figures] = {}

    def add(self, start: float, end: float, stream: Any, kind: str, launch: float | None,
            correlated: bool) -> None:
        """One activity: ``launch`` is its launching host call's start (None if unknown);
        ``correlated`` says whether it carries a correlation id at all."""
        moment = launch if launch is not None else start
        index = bisect.bisect_right(self._starts, moment) - 1
        if index >= 0 and moment < self._ends[index]:
            number = self.steps[index][0]
            figures = self.per_step.get(number)
            if figures is None:
                figures = self.per_step[number] = _Figures()
            figures.add(start, end, kind)
        limit = self.window_end
        if limit is not None:
            if launch is None and correlated:
                return  # its launch is not in the trace: it cannot be placed in the window
            if moment > limit or (moment == limit and not self.include_end):
                return
        self._count(start, end, stream, kind, launch)

    def add_in_step(self, start: float, end: float, stream: Any, kind: str, step: int | None) -> None:
        """One activity whose step is known (from a table): it always counts."""
        self._add_to_step(step, start, end, kind)
        self._count(start, end, stream, kind, None)

    def _add_to_step(self, step: int | None, start: float, end: float, kind: str) -> None:
        if step is None:
            return
        figures = self.per_step.get(step)
        if figures is None:
            figures = self.per_step[step] = _Figures()
        figures.add(start, end, kind)

    def _count(self, start: float, end: float, stream: Any, kind: str, launch: float | None) -> None:
        self.figures.add(start, end, kind)
        lane = self.streams.get(stream)
        if lane is None:
            lane = self.streams[stream] = _Stream(start, end)
        elif start > lane.end:
            if launch is not None and launch > lane.end:  # the device waited for the host to launch it
                lane.host_wait += start - lane.end
            lane.busy += lane.end - lane.start
            lane.start = start
            lane.end = end
        elif end > lane.end:
            lane.end = end
        lane.count += 1

    def result(self, rank: int | None, device: str) -> DeviceTime | None:
        """The figures (None when no activity was counted)."""
        figures = self.figures
        figures.close()
        if figures.first is None:
            return None
        streams = []
        for name, lane in sorted(self.streams.items(), key=lambda item: str(item[0])):
            busy = lane.busy + lane.end - lane.start
            span = lane.end - lane.first
            streams.append(StreamTime(str(name), lane.count, _ns(busy), _ns(max(0.0, span - busy)),
                                      _ns(lane.host_wait)))
        combos = figures.combinations()
        busy = figures.busy
        types = []
        for mask, time in sorted(combos.items(), key=lambda item: -item[1]):
            single = [kind for kind in KINDS if mask == _BIT[kind]]
            kind = single[0] if single else None
            types.append(KernelTypeTime(
                _combo_name(mask), _ns(time), time / busy if busy else 0.0,
                figures.count[kind] if kind else 0, _ns(figures.summed[kind]) if kind else 0,
            ))
        steps = []
        for number, step_figures in sorted(self.per_step.items()):
            step_figures.close()
            steps.append(_step_time(number, step_figures))
        span = figures.span
        return DeviceTime(
            rank=rank, device=device, span_ns=_ns(span), busy_ns=_ns(busy), idle_ns=_ns(span - busy),
            idle_share=(span - busy) / span if span else 0.0,
            compute_ns=_ns(figures.union("compute")),
            communication_ns=_ns(figures.union("communication")),
            memory_ns=_ns(figures.union("memory")),
            comm_overlapped_share=figures.overlapped_share(),
            streams=streams, kernel_types=types, steps=steps,
        )


def _step_time(number: int, figures: _Figures) -> StepDeviceTime:
    span = figures.span
    busy = figures.busy
    return StepDeviceTime(
        step=number, span_ns=_ns(span), busy_ns=_ns(busy), idle_ns=_ns(span - busy),
        idle_share=(span - busy) / span if span else 0.0,
        compute_ns=_ns(figures.union("compute")),
        communication_ns=_ns(figures.union("communication")),
        memory_ns=_ns(figures.union("memory")),
        comm_overlapped_share=figures.overlapped_share(),
    )
