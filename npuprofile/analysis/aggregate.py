"""One pass over a trace's events: self times by nesting, regions, steps, memory peaks.

Self time comes from the nesting of complete (``ph == "X"``) events on each
lane (one ``(pid, tid)`` pair: a host thread or a device stream): an event's
self time is its duration minus the durations of the events directly inside it.
Events of a lane are put in start order through a bounded window, so nearly
sorted input (what profilers write) is handled exactly and memory does not grow
with the trace; an event that arrives later than the window allows is counted in
``late_events`` and taken as having no parent or children.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

#: Categories of host-side annotations: npuprofile's regions and ``ProfilerStep#N``.
REGION_CATEGORIES = frozenset({"user_annotation"})
#: Categories that are never operators (markers, Python frames, profiler spans).
NOT_OPS = frozenset({"user_annotation", "gpu_user_annotation", "python_function", "Trace", "overhead", "ac2g"})
#: Categories of work that runs on a device.
DEVICE_CATEGORIES = frozenset({"kernel", "gpu_memcpy", "gpu_memset", "gpu_user_annotation"})
#: Process names (or labels) of device lanes: CUDA (``GPU n``), torch_npu (``Ascend Hardware``, ``HCCL``).
DEVICE_PROCESS = re.compile(r"\b(GPU|NPU|Ascend Hardware|HCCL|device)\b", re.IGNORECASE)
#: Processes whose events are derived views of others (counting them would count time twice).
DERIVED_PROCESS = re.compile(r"Overlap Analysis", re.IGNORECASE)
STEP_PREFIX = "ProfilerStep#"

WINDOW = 4096

# A frame on a lane's stack (a list, for speed):
# [name, cat, pid, ts, dur, end, child, region_child, region_parent, step, kind, children, folded]
_NAME, _CAT, _PID, _TS, _DUR, _END, _CHILD, _RCHILD, _RPARENT, _STEP, _KIND, _KIDS, _FOLD = range(13)
_OP, _REGION, _STEPKIND, _OTHER = 0, 1, 2, 3


class _Lane:
    __slots__ = ("pending", "stack", "watermark")

    def __init__(self) -> None:
        self.pending: list[tuple[float, float, int, dict[str, Any]]] = []
        self.stack: list[list[Any]] = []
        self.watermark = float("-inf")


class Aggregator:
    """Feed it events (dicts, ``ts``/``dur`` in microseconds); read totals after :meth:`finish`.

    Results (durations in microseconds, as floats):

    - ``ops[(pid, cat, name)] = [count, total, self]`` for operator events;
    - ``regions[name] = [count, total, self]`` for user annotations, where a
      region's self time excludes the regions nested in it (not the ops);
    - ``steps`` = list of ``(number, pid, ts, dur)``; ``step_regions[(pid, number)][name]`` = region self time;
    - ``memory[(device_type, device_id)] = [peak_allocated, peak_reserved]`` (bytes);
    - ``process_names[pid]`` from metadata events; ``counts[ph]`` events by phase.
    """

    def __init__(self, region_names: Iterable[str] = ()) -> None:
        self.extra_regions = frozenset(region_names)
        self.lanes: dict[tuple[Any, Any], _Lane] = {}
        self.ops: dict[tuple[Any, Any, str], list[float]] = {}
        self.regions: dict[str, list[float]] = {}
        self.steps: list[tuple[int, Any, float, float]] = []
        self.step_regions: dict[tuple[Any, int], dict[str, float]] = {}
        self.memory: dict[tuple[Any, Any], list[float]] = {}
        self.process_names: dict[Any, str] = {}
        self.counts: dict[str, int] = {}
        self.late_events = 0
        self.first_ts = float("inf")
        self.last_ts = float("-inf")
        self._seq = 0
        self._kinds: dict[Any, dict[str, tuple[int, int | None]]] = {}

    # -- feeding --------------------------------------------------------------------
    def feed(self, event: dict[str, Any]) -> None:
        """Take one event into account."""
        self.feed_all((event,))

    def feed_all(self, events: Iterable[dict[str, Any]]) -> "Aggregator":
        """Feed every event; return self (call :meth:`finish` after). The hot loop of trace analysis."""
        counts = self.counts
        lanes = self.lanes
        limit = 2 * WINDOW
        seq = self._seq
        complete = 0
        last_pid = last_tid = last_lane = None
        for event in events:
            ph = event.get("ph")
            if ph == "X":
                complete += 1
                ts = event.get("ts")
                dur = event.get("dur")
                if ts is None or dur is None:
                    continue
                pid = event.get("pid")
                tid = event.get("tid")
                if pid == last_pid and tid == last_tid and last_lane is not None:
                    lane = last_lane
                else:
                    lane = lanes.get((pid, tid))
                    if lane is None:
                        lane = lanes[(pid, tid)] = _Lane()
                    last_pid, last_tid, last_lane = pid, tid, lane
                if ts < lane.watermark:
                    self.late_events += 1
                    self._close(self._frame(event, ts, dur, None), None)
                    continue
                seq += 1
                pending = lane.pending
                pending.append((ts, -dur, seq, event))
                if len(pending) >= limit:
                    self._advance(lane, WINDOW)
            else:
                counts[ph] = counts.get(ph, 0) + 1
                if ph == "M":
                    self._metadata(event)
                elif (ph == "i" or ph == "I") and event.get("name") == "[memory]":
                    self._memory(event.get("args") or {})
        self._seq = seq
        counts["X"] = counts.get("X", 0) + complete
        return self

    def _metadata(self, event: dict[str, Any]) -> None:
        if event.get("name") in ("process_name", "process_labels"):
            args = event.get("args") or {}
            label = args.get("name") or args.get("labels")
            if label:
                pid = event.get("pid")
                known = self.process_names.get(pid)
                self.process_names[pid] = f"{known} {label}" if known and label not in known else str(label)

    def _memory(self, args: dict[str, Any]) -> None:
        device = (args.get("Device Type"), args.get("Device Id"))
        peaks = self.memory.get(device)
        if peaks is None:
            peaks = self.memory[device] = [0.0, 0.0]
        allocated = args.get("Total Allocated")
        reserved = args.get("Total Reserved")
        if isinstance(allocated, (int, float)) and allocated > peaks[0]:
            peaks[0] = allocated
        if isinstance(reserved, (int, float)) and reserved > peaks[1]:
            peaks[1] = reserved

    # -- nesting --------------------------------------------------------------------
    def _advance(self, lane: _Lane, count: int) -> None:
        """Take the first ``count`` pending events of a lane, in start order, onto its stack."""
        if not count:
            return
        pending = lane.pending
        pending.sort()  # (ts, -dur, seq, ...): seq is unique, so events are never compared
        stack = lane.stack
        close = self._close
        kinds = self._kinds
        last_end = self.last_ts
        if pending[0][0] < self.first_ts:
            self.first_ts = pending[0][0]
        for index in range(count):
            ts, negdur, _seq, event = pending[index]
            dur = -negdur
            end = ts + dur
            if end > last_end:
                last_end = end
            while stack and stack[-1][_END] <= ts:
                frame = stack.pop()
                close(frame, stack[-1] if stack else None)
            name = event.get("name") or ""
            cat = event.get("cat")
            by_name = kinds.get(cat)
            if by_name is None:
                by_name = kinds[cat] = {}
            kind_step = by_name.get(name)
            if kind_step is None:
                kind_step = by_name[name] = self._kind(name, cat)
            kind, step = kind_step
            if stack:
                parent = stack[-1]
                room = parent[_END] - ts
                parent[_CHILD] += dur if dur < room else room
                parent[_KIDS] += 1
                if parent[_FOLD] is not None:  # a second child: the first is an op of its own after all
                    self._record(parent[_FOLD])
                    parent[_FOLD] = None
                if kind == _STEPKIND:
                    region_parent = None
                else:
                    step = parent[_STEP]
                    region_parent = parent if parent[_KIND] == _REGION else parent[_RPARENT]
            else:
                region_parent = None
            stack.append([name, cat, event.get("pid"), ts, dur, end, 0.0, 0.0, region_parent, step, kind, 0, None])
        self.last_ts = last_end
        lane.watermark = pending[count - 1][0]
        del pending[:count]

    def _kind(self, name: str, cat: Any) -> tuple[int, int | None]:
        """What an event of this name and category is: (kind, step number of a ProfilerStep)."""
        if name.startswith(STEP_PREFIX):
            try:
                return _STEPKIND, int(name[len(STEP_PREFIX):])
            except ValueError:
                return _OTHER, None
        if cat in REGION_CATEGORIES or name in self.extra_regions:
            return _REGION, None
        if cat in NOT_OPS:
            return _OTHER, None
        return _OP, None

    def _frame(self, event: dict[str, Any], ts: float, dur: float, parent: list[Any] | None) -> list[Any]:
        """A frame for an event taken out of order (no parent, no children)."""
        name = event.get("name") or ""
        cat = event.get("cat")
        kind, step = self._kind(name, cat)
        if ts < self.first_ts:
            self.first_ts = ts
        if ts + dur > self.last_ts:
            self.last_ts = ts + dur
        return [name, cat, event.get("pid"), ts, dur, ts + dur, 0.0, 0.0, None, step, kind, 0, None]

    def _close(self, frame: list[Any], parent: list[Any] | None) -> None:
        """A frame ended. An op that is the only child of an op of the same name (a dispatcher
        re-entering itself, e.g. ``aten::sum`` inside ``aten::sum``) is folded into its parent, as
        ``torch.profiler``'s op table does: the parent takes over its children."""
        folded = frame[_FOLD]
        if folded is not None:
            frame[_CHILD] = folded[_CHILD]
            frame[_FOLD] = None
        if (
            frame[_KIND] == _OP
            and parent is not None
            and parent[_KIDS] == 1
            and parent[_KIND] == _OP
            and parent[_NAME] == frame[_NAME]
        ):
            parent[_FOLD] = frame  # an op whose only child has its name: counted once, as torch does
            return
        self._record(frame)

    def _record(self, frame: list[Any]) -> None:
        kind = frame[_KIND]
        dur = frame[_DUR]
        if kind == _OP:
            key = (frame[_PID], frame[_CAT], frame[_NAME])
            row = self.ops.get(key)
            if row is None:
                self.ops[key] = [1, dur, dur - frame[_CHILD]]
            else:
                row[0] += 1
                row[1] += dur
                row[2] += dur - frame[_CHILD]
        elif kind == _REGION:
            name = frame[_NAME]
            own = dur - frame[_RCHILD]
            row = self.regions.get(name)
            if row is None:
                self.regions[name] = [1, dur, own]
            else:
                row[0] += 1
                row[1] += dur
                row[2] += own
            parent = frame[_RPARENT]
            if parent is not None:
                parent[_RCHILD] += dur
            step = frame[_STEP]
            if step is not None:
                per_step = self.step_regions.setdefault((frame[_PID], step), {})
                per_step[name] = per_step.get(name, 0.0) + own
        elif kind == _STEPKIND:
            self.steps.append((frame[_STEP], frame[_PID], frame[_TS], dur))
        frame[_RPARENT] = None  # let closed chains be freed

    def finish(self) -> "Aggregator":
        """Flush every lane (call once, after the last event)."""
        for lane in self.lanes.values():
            self._advance(lane, len(lane.pending))
            stack = lane.stack
            while stack:
                frame = stack.pop()
                self._close(frame, stack[-1] if stack else None)
        return self

    # -- classification ---------------------------------------------------------------
    def op_kind(self, pid: Any, cat: Any) -> str | None:
        """``"device"``, ``"cpu"``, or None for derived lanes that must not be counted."""
        process = self.process_names.get(pid, "")
        if process and DERIVED_PROCESS.search(process):
            return None
        if cat in DEVICE_CATEGORIES or (process and DEVICE_PROCESS.search(process)):
            return "device"
        return "cpu"
