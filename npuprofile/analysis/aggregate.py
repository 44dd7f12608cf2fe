"""One pass over a trace's events: ops, regions, steps, memory peaks and device time.

Feeding (:meth:`Aggregator.feed_all`) only files each complete event as a small
record on its lane (one ``(pid, tid)`` pair) in a :class:`~.spill.LaneSorter`;
:meth:`Aggregator.finish` then reads every lane in start order, whatever order
the file had, and:

- nests host lanes exactly (:mod:`.nesting`); processes that the backends'
  layouts name as one group (the same OS threads written twice) nest together;
- counts every device-lane event: kernels, memcpys and memsets are ops (never
  folded), synchronization markers are counted apart, annotations are skipped,
  and the activities give the device time (:mod:`.device_time`);
- sums the lanes of a trace's own overlap analysis, when it has one, to check
  the device time against;
- keeps the median step's intervals, bounded, as a timeline (:mod:`.timeline`):
  the host lanes are read a second time up to that step's end.

Which process is a host, a device or a derived view comes from the registered
backends' trace layouts (:mod:`.layouts`).

A complete event whose ``ts`` or ``dur`` is not a number (a string, a list,
``null``) or lies beyond :data:`MAX_TIME_US`, or whose ``pid``, ``tid``,
``name``, ``cat`` or ``ph`` cannot be a key (a list, an object), is skipped and
counted in ``malformed``; a name that is not a string (a number) is used as
its text. A trace with more than :data:`MAX_LANES` lanes ends with a
:class:`~npuprofile.analysis.events.TraceLimitError` (each lane costs memory
until the end; real traces have tens to hundreds).
"""

from __future__ import annotations

import heapq
import itertools
import operator
import re
from typing import Any, Iterable, Iterator

from npuprofile.analysis.device_time import DeviceTime, DeviceTimeBuilder
from npuprofile.analysis.events import TraceLimitError
from npuprofile.analysis.layouts import TraceRules, trace_rules
from npuprofile.analysis.nesting import OP, REGION, HostNesting, Kinds
from npuprofile.analysis.spill import BUDGET, LaneSorter
from npuprofile.analysis.timeline import TimelineBuilder, median_step
from npuprofile.summary.model import StepTimeline

__all__ = ["Aggregator", "MAX_TIME_US", "MAX_LANES"]

#: The most lanes (``(pid, tid)`` pairs with complete events) in one trace.
MAX_LANES = 10_000

#: The largest ``ts`` or ``dur`` taken, in microseconds (the year 2096 after the epoch; ``ts`` is usually
#: far smaller, relative to the trace's ``baseTimeNanoseconds``). Beyond it, an event is malformed.
MAX_TIME_US = 4e15
_CHECK_EVERY = 4096
_LABEL_NUMBER = re.compile(r"^\s*([A-Za-z][\w ]*?)\s*(\d+)\s*$")
_STREAM_NAME = re.compile(r"^\s*stream\s*(\d+)\s*$", re.IGNORECASE)
_first = operator.itemgetter(0)


class Aggregator:
    """Feed it events (dicts, ``ts``/``dur`` in microseconds); read the results after :meth:`finish`.

    Results (durations in microseconds, as floats), keyed by name:

    - ``cpu_ops[name] = [count, total, self]`` (host ops), ``device_ops[name] = [count, total, self]``
      (device activities, self = total), ``sync_ops[name] = [count, total]`` (synchronization markers);
    - ``regions[name] = [count, total, self]``; a region's self time excludes the regions nested in it;
    - ``steps``: ``(number, ts, dur)`` of the host ``ProfilerStep#N`` ranges;
      ``step_regions[number][name]`` = region self time in that step;
    - ``device_time``: one :class:`~.device_time.DeviceTime` per device (``rank`` left None);
    - ``timeline``: the median host step's :class:`~npuprofile.summary.model.StepTimeline` (None without steps);
    - ``overlap[figure]``: totals of the trace's own overlap lanes (``compute``, ``idle``, ...), if any;
    - ``memory[(device_type, device_id)] = [peak_allocated, peak_reserved]`` (bytes);
    - ``process_names[pid]``, ``counts[ph]``, ``malformed`` (complete events without numeric ts/dur).
    """

    def __init__(self, region_names: Iterable[str] = (), *, rules: TraceRules | None = None,
                 include_last_step: bool = False, budget: int = BUDGET) -> None:
        self.rules = rules if rules is not None else trace_rules()
        self.include_last_step = include_last_step
        self.kinds = Kinds(region_names)
        self.sorter = LaneSorter(budget)
        self.cpu_ops: dict[str, list[float]] = {}
        self.device_ops: dict[str, list[float]] = {}
        self.sync_ops: dict[str, list[float]] = {}
        self.regions: dict[str, list[float]] = {}
        self.steps: list[tuple[int, float, float]] = []
        self.step_regions: dict[int, dict[str, float]] = {}
        self.device_time: list[DeviceTime] = []
        self.timeline: StepTimeline | None = None
        self.overlap: dict[str, float] = {}
        self.memory: dict[tuple[Any, Any], list[float]] = {}
        self.process_names: dict[Any, str] = {}
        self.process_labels: dict[Any, str] = {}
        self.thread_names: dict[tuple[Any, Any], str] = {}
        self.counts: dict[Any, int] = {}
        self.malformed = 0
        self.first_ts = float("inf")
        self.last_ts = float("-inf")
        self._seq = 0

    # -- feeding --------------------------------------------------------------------
    def feed_all(self, events: Iterable[dict[str, Any]]) -> "Aggregator":
        """Feed every event; return self (call :meth:`finish` after). The hot loop of trace analysis."""
        counts: dict[Any, int] = self.counts
        sorter = self.sorter
        buffers = sorter.buffers
        memory = self._memory
        by_category = self.kinds.by_category
        intern = self.kinds.add
        seq = self._seq
        complete = malformed = 0
        next_check = seq + _CHECK_EVERY
        last_pid = last_tid = buffer = None
        for event in events:
            ph = event.get("ph")
            if ph == "X":
                complete += 1
                try:  # numbers only: a string, list or missing value is a malformed event
                    ts = event["ts"] + 0.0
                    negdur = -event["dur"] - 0.0
                except (KeyError, TypeError):
                    malformed += 1
                    continue
                if not (-MAX_TIME_US <= ts <= MAX_TIME_US and -MAX_TIME_US <= negdur <= MAX_TIME_US):  # NaN too
                    malformed += 1
                    continue
                pid = event.get("pid")
                tid = event.get("tid")
                if buffer is None or pid != last_pid or tid != last_tid:
                    try:
                        buffer = buffers.get((pid, tid))
                    except TypeError:  # an unhashable pid or tid
                        malformed += 1
                        continue
                    if buffer is None:
                        if len(buffers) >= MAX_LANES:
                            raise TraceLimitError(f"more than {MAX_LANES} threads with complete events "
                                                  f"((pid, tid) pairs; limit: {MAX_LANES} lanes)")
                        buffer = sorter.buffer((pid, tid))
                    last_pid, last_tid = pid, tid
                try:
                    kid = by_category[event.get("cat")][event.get("name")]
                except KeyError:
                    kid = intern(event.get("name"), event.get("cat"))
                except TypeError:  # an unhashable name or category
                    malformed += 1
                    continue
                args = event.get("args")
                corr = args.get("correlation") if args.__class__ is dict else None
                if corr.__class__ is not int:
                    corr = None
                seq += 1
                buffer.append((ts, negdur, seq, kid, corr))
                if seq >= next_check:
                    sorter.check()
                    next_check = seq + _CHECK_EVERY
            else:
                try:
                    counts[ph] = counts.get(ph, 0) + 1
                except TypeError:  # an unhashable phase
                    malformed += 1
                    continue
                if ph == "M":
                    self._metadata(event)
                elif (ph == "i" or ph == "I") and event.get("name") == "[memory]":
                    memory(event.get("args"))
        self._seq = seq
        self.malformed += malformed
        counts["X"] = counts.get("X", 0) + complete
        return self

    def _metadata(self, event: dict[str, Any]) -> None:
        name = event.get("name")
        args = event.get("args")
        if args.__class__ is not dict:
            return
        pid = event.get("pid")
        try:
            if name == "process_name" and args.get("name") is not None:
                self.process_names[pid] = str(args["name"])
            elif name == "process_labels" and args.get("labels") is not None:
                self.process_labels[pid] = str(args["labels"])
            elif name == "thread_name" and args.get("name") is not None:
                self.thread_names[(pid, event.get("tid"))] = str(args["name"])
        except TypeError:  # an unhashable pid or tid
            return

    def _memory(self, args: Any) -> None:
        if args.__class__ is not dict:
            return
        try:
            device = (args.get("Device Type"), args.get("Device Id"))
            peaks = self.memory.get(device)
        except TypeError:
            return
        if peaks is None:
            peaks = self.memory[device] = [0.0, 0.0]
        allocated = args.get("Total Allocated")
        reserved = args.get("Total Reserved")
        if isinstance(allocated, (int, float)) and allocated > peaks[0]:
            peaks[0] = allocated
        if isinstance(reserved, (int, float)) and reserved > peaks[1]:
            peaks[1] = reserved

    # -- lanes ------------------------------------------------------------------------
    def process_text(self, pid: Any) -> str:
        """A process's name and labels, as one string (for display and matching)."""
        name = self.process_names.get(pid, "")
        labels = self.process_labels.get(pid, "")
        return f"{name} {labels}".strip() if labels and labels not in name else name

    def role(self, pid: Any) -> str:
        """``"host"``, ``"device"`` or ``"derived"`` for a process of this trace."""
        return self.rules.process_role(self.process_names.get(pid, ""), self.process_labels.get(pid, ""))

    def device_label(self, pid: Any) -> str:
        """The device a device process belongs to: ``"GPU 0"``, ``"NPU"``, ... (from its labels or name)."""
        text = self.process_labels.get(pid) or self.process_names.get(pid) or f"pid {pid}"
        match = _LABEL_NUMBER.match(text)
        return f"{match.group(1)} {match.group(2)}" if match else text.strip()

    # -- finishing ----------------------------------------------------------------------
    def finish(self) -> "Aggregator":
        """Nest and count every lane (call once, after the last event)."""
        try:
            lanes = self.sorter.keys()
            host: dict[tuple[Any, Any], list[tuple[Any, Any]]] = {}
            devices: dict[str, list[tuple[Any, Any]]] = {}
            derived: list[tuple[Any, Any]] = []
            for lane in lanes:
                pid, tid = lane
                role = self.role(pid)
                if role == "host":
                    group = self.rules.host_groups.get(self.process_names.get(pid, ""), pid)
                    host.setdefault((group, tid), []).append(lane)
                elif role == "device":
                    devices.setdefault(self.device_label(pid), []).append(lane)
                else:
                    derived.append(lane)
            nesting = HostNesting(self.kinds)
            for group_lanes in host.values():
                streams = [self.sorter.sorted(lane) for lane in group_lanes]
                nesting.nest(streams[0] if len(streams) == 1 else heapq.merge(*streams))
            self._host_results(nesting)
            timeline = self._host_timeline(host)
            for label, device_lanes in sorted(devices.items()):
                self._device(label, device_lanes, nesting, timeline)
            if timeline is not None:
                self.timeline = timeline.result()
            for lane in derived:
                self._overlap(lane)
        finally:
            self.sorter.close()
        return self

    def _host_results(self, nesting: HostNesting) -> None:
        names = self.kinds.names
        for kid, (count, total, own) in nesting.ops.items():
            _add(self.cpu_ops, names[kid], count, total, own)
        for kid, (count, total, own) in nesting.regions.items():
            _add(self.regions, names[kid], count, total, own)
        self.steps = sorted(nesting.steps, key=lambda s: s[1])
        for number, per_region in nesting.step_regions.items():
            target = self.step_regions.setdefault(number, {})
            for kid, own in per_region.items():
                target[names[kid]] = target.get(names[kid], 0.0) + own
        self.first_ts = min(self.first_ts, nesting.first_ts)
        self.last_ts = max(self.last_ts, nesting.last_ts)

    def _host_timeline(self, host: dict[tuple[Any, Any], list[tuple[Any, Any]]]) -> TimelineBuilder | None:
        """The median step's builder, fed every host thread's intervals within that step (None without steps)."""
        step = median_step(self.steps)
        if step is None:
            return None
        timeline = TimelineBuilder(step)
        kinds = self.kinds
        for (_group, tid), group_lanes in host.items():
            streams = [self.sorter.sorted(lane) for lane in group_lanes]
            records = streams[0] if len(streams) == 1 else heapq.merge(*streams)
            name = next((self.thread_names[lane] for lane in group_lanes if self.thread_names.get(lane)), None)
            timeline.host_lane(name or f"thread {tid}", records, kinds.names, kinds.kinds, OP, REGION)
        return timeline

    def _window_end(self) -> float | None:
        """Where counted device activities must have been launched before (None: no limit)."""
        if len({number for number, _, _ in self.steps}) < 2:
            return None
        if self.include_last_step:
            return max(ts + dur for _, ts, dur in self.steps)
        return max(ts for _, ts, _ in self.steps)

    def _device(self, label: str, lanes: list[tuple[Any, Any]], nesting: HostNesting,
                timeline: TimelineBuilder | None) -> None:
        rules = self.rules
        names = self.kinds.names
        categories = self.kinds.categories
        launches = nesting.launches
        steps = [(number, ts, ts + dur) for number, ts, dur in self.steps]
        builder = DeviceTimeBuilder(self._window_end(), steps, include_end=self.include_last_step)
        kinds: dict[int, str] = {}
        tallies: dict[int, list[float]] = {}
        streams: list[Iterator[tuple[Any, Any]]] = [
            zip(self.sorter.sorted(lane), itertools.repeat(_stream_name(lane[1]))) for lane in lanes
        ]
        merged = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=_first)
        first = last = None
        for (ts, negdur, _seq, kid, corr), stream in merged:
            kind = kinds.get(kid)
            if kind is None:
                kind = kinds[kid] = rules.activity_kind(names[kid], categories[kid])
            end = ts - negdur
            if first is None:
                first = ts
            if last is None or end > last:
                last = end
            tally = tallies.get(kid)
            if tally is None:
                tallies[kid] = [1, -negdur]
            else:
                tally[0] += 1
                tally[1] -= negdur
            if kind == "marker" or kind == "sync":
                continue
            launch = launches.get(corr) if corr is not None else None
            builder.add(ts, end, stream, kind, launch, corr is not None)
            if timeline is not None and timeline.launched_in_step(ts if launch is None else launch):
                timeline.device(label, stream, ts, end, names[kid], kind)
        for kid, (count, total) in tallies.items():
            kind = kinds[kid]
            if kind == "sync":
                row = self.sync_ops.setdefault(names[kid], [0, 0.0])
                row[0] += count
                row[1] += total
            elif kind != "marker":
                _add(self.device_ops, names[kid], count, total, total)
        if first is not None and last is not None:
            self.first_ts = min(self.first_ts, first)
            self.last_ts = max(self.last_ts, last)
        result = builder.result(None, label)
        if result is not None:
            self.device_time.append(result)

    def _overlap(self, lane: tuple[Any, Any]) -> None:
        figure = self.rules.overlap_threads.get(self.thread_names.get(lane, ""))
        if figure is None:
            return
        total = 0.0
        for record in self.sorter.sorted(lane):
            total -= record[1]
        self.overlap[figure] = self.overlap.get(figure, 0.0) + total


def _add(table: dict[str, list[float]], name: str, count: float, total: float, own: float) -> None:
    row = table.get(name)
    if row is None:
        table[name] = [count, total, own]
    else:
        row[0] += count
        row[1] += total
        row[2] += own


def _stream_name(tid: Any) -> str:
    """A device lane's stream: its thread id (``"stream 7"``, as 2021 traces write it, becomes ``"7"``)."""
    match = _STREAM_NAME.match(tid) if isinstance(tid, str) else None
    return match.group(1) if match else str(tid)
