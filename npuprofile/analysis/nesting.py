"""Exact nesting of a host lane's complete events: self times of ops, regions and steps.

A host lane is one OS thread (a ``(pid, tid)`` pair, or several pairs that the
layout says are the same threads). Its records come in start order (longest
first at equal starts, file order last); an event is a child of the innermost
open event that ends after it starts. An op's self time is its duration minus
its direct children's (every complete event takes part: runtime calls, Python
frames, regions); a region's self time excludes only the regions nested in it.
An op whose only child is an op of the same name (a dispatcher re-entering
itself) is counted once, as torch's op table does.

Records are tuples ``(ts, -dur, seq, kind_id, correlation)`` (microseconds);
:class:`Kinds` interns each event's ``(name, category)`` into ``kind_id``.

At most :data:`MAX_OPEN_EVENTS` events may be open at once on a lane (each
inside the one before; real traces nest a few dozen deep): beyond it, as with
many thousands of events sharing one start and duration, nesting ends with a
:class:`~npuprofile.analysis.events.TraceLimitError`, so the stack never grows
with the trace. Likewise :class:`Kinds` holds at most :data:`MAX_KINDS` distinct
``(name, category)`` pairs, :data:`MAX_NAME_CHARS` characters of names in all.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from npuprofile.analysis.events import TraceLimitError

__all__ = ["Kinds", "HostNesting", "OP", "REGION", "STEP", "OTHER", "STEP_PREFIX", "REGION_CATEGORIES", "NOT_OPS",
           "MAX_OPEN_EVENTS"]

#: The most events open at once on one lane (nested inside one another).
MAX_OPEN_EVENTS = 50_000
#: The most distinct ``(name, category)`` pairs in one trace (real traces have a few thousand).
MAX_KINDS = 250_000
#: The most characters of distinct names in one trace.
MAX_NAME_CHARS = 32 << 20

STEP_PREFIX = "ProfilerStep#"
#: Categories of host-side annotations: npuprofile's regions and ``ProfilerStep#N``.
REGION_CATEGORIES = frozenset({"user_annotation"})
#: Categories that are never operators (markers, Python frames, profiler spans, flows).
NOT_OPS = frozenset({"user_annotation", "gpu_user_annotation", "python_function", "Trace", "overhead", "ac2g"})
OP, REGION, STEP, OTHER = 0, 1, 2, 3


class Kinds:
    """Interned ``(name, category)`` pairs: what each is (op, region, step, other) and its step number."""

    def __init__(self, region_names: Iterable[str] = ()) -> None:
        self.extra_regions = frozenset(region_names)
        self.by_category: dict[Any, dict[Any, int]] = {}
        self.names: list[str] = []
        self.categories: list[Any] = []
        self.kinds: list[int] = []
        self.step_numbers: list[int | None] = []
        self.name_chars = 0

    def add(self, name: Any, category: Any) -> int:
        """The id of ``(name, category)``, interned on first sight (names that are not strings become strings)."""
        if not isinstance(name, str):
            name = "" if name is None else str(name)
        if category is not None and not isinstance(category, str):
            category = str(category)
        by_name = self.by_category.get(category)
        if by_name is None:
            by_name = self.by_category[category] = {}
        found = by_name.get(name)
        if found is not None:
            return found
        self.name_chars += len(name)
        if len(self.names) >= MAX_KINDS or self.name_chars > MAX_NAME_CHARS:
            raise TraceLimitError(f"more than {MAX_KINDS} distinct event names, or more than "
                                  f"{MAX_NAME_CHARS >> 20} M characters of them (limit: {MAX_KINDS} names, "
                                  f"{MAX_NAME_CHARS >> 20} M characters)")
        kind, step = self._classify(name, category)
        ident = by_name[name] = len(self.names)
        self.names.append(name)
        self.categories.append(category)
        self.kinds.append(kind)
        self.step_numbers.append(step)
        return ident

    def _classify(self, name: str, category: Any) -> tuple[int, int | None]:
        if name.startswith(STEP_PREFIX):
            try:
                return STEP, int(name[len(STEP_PREFIX):])
            except ValueError:
                return OTHER, None
        if category in REGION_CATEGORIES or name in self.extra_regions:
            return REGION, None
        if category in NOT_OPS:
            return OTHER, None
        return OP, None


# A frame on the stack (a list, for speed):
# [kind_id, ts, dur, end, child, region_child, region_parent, step, kind, children, folded]
_KID, _TS, _DUR, _END, _CHILD, _RCHILD, _RPARENT, _STEPNO, _KIND, _KIDS, _FOLD = range(11)


class HostNesting:
    """Accumulates the results of nesting host lanes (call :meth:`nest` once per lane).

    - ``ops[kind_id] = [count, total, self]``; ``regions[kind_id] = [count, total, self]``;
    - ``steps``: ``(number, ts, dur)`` of every ``ProfilerStep#N``;
      ``step_regions[number][kind_id]`` = that region's self time inside the step;
    - ``launches[correlation] = ts`` of every host event that carries a correlation id;
    - ``first_ts`` / ``last_ts``: the host lanes' extent.
    """

    def __init__(self, kinds: Kinds) -> None:
        self.kinds = kinds
        self.ops: dict[int, list[float]] = {}
        self.regions: dict[int, list[float]] = {}
        self.steps: list[tuple[int, float, float]] = []
        self.step_regions: dict[int, dict[int, float]] = {}
        self.launches: dict[Any, float] = {}
        self.first_ts = float("inf")
        self.last_ts = float("-inf")

    def nest(self, records: Iterator[tuple[Any, ...]]) -> None:
        """Nest one lane's records, given in ascending order.

        The last record waits as ``pending`` until the next one shows whether it
        has children: most records are leaves, and a leaf needs no frame.
        """
        kinds = self.kinds.kinds
        steps = self.kinds.step_numbers
        launches = self.launches
        ops = self.ops
        close = self._close
        stack: list[list[Any]] = []
        pending: tuple[Any, ...] | None = None
        first = None
        last_end = self.last_ts
        for ts, negdur, _seq, kid, corr in records:
            if first is None:
                first = ts
            dur = -negdur
            end = ts + dur
            if end > last_end:
                last_end = end
            if corr is not None:
                launches[corr] = ts
            if pending is not None:
                if ts < pending[3]:  # it has a child: it becomes a frame
                    if len(stack) >= MAX_OPEN_EVENTS:
                        raise TraceLimitError(
                            f"more than {MAX_OPEN_EVENTS} events open at once on one thread, each inside the one "
                            f"before (e.g. many events with one start and duration; limit: {MAX_OPEN_EVENTS} "
                            "open events)")
                    p_kid, p_ts, p_dur, p_end, p_region, p_step, p_kind = pending
                    stack.append([p_kid, p_ts, p_dur, p_end, 0.0, 0.0, p_region, p_step, p_kind, 0, None])
                else:
                    self._leaf(pending, stack[-1] if stack else None, ops, close)
                pending = None
            while stack and stack[-1][_END] <= ts:
                frame = stack.pop()
                parent = stack[-1] if stack else None
                if frame[_KIND] != OP or frame[_FOLD] is not None or (
                        parent is not None and parent[_KIDS] == 1 and parent[_KID] == frame[_KID]):
                    close(frame, parent)
                    continue
                # The common case, inline: an op that took over no child and cannot fold into its parent.
                row = ops.get(frame[_KID])
                if row is None:
                    ops[frame[_KID]] = [1, frame[_DUR], frame[_DUR] - frame[_CHILD]]
                else:
                    row[0] += 1
                    row[1] += frame[_DUR]
                    row[2] += frame[_DUR] - frame[_CHILD]
            kind = kinds[kid]
            step = steps[kid]
            region_parent = None
            if stack:
                parent = stack[-1]
                room = parent[_END] - ts
                parent[_CHILD] += dur if dur < room else room
                parent[_KIDS] += 1
                if parent[_FOLD] is not None:  # a second child: the first is an op of its own after all
                    self._record(parent[_FOLD])
                    parent[_FOLD] = None
                if kind != STEP:
                    step = parent[_STEPNO]
                    region_parent = parent if parent[_KIND] == REGION else parent[_RPARENT]
            pending = (kid, ts, dur, end, region_parent, step, kind)
        if pending is not None:
            self._leaf(pending, stack[-1] if stack else None, ops, close)
        while stack:
            frame = stack.pop()
            close(frame, stack[-1] if stack else None)
        if first is not None and first < self.first_ts:
            self.first_ts = first
        self.last_ts = last_end

    @staticmethod
    def _leaf(pending: tuple[Any, ...], parent: list[Any] | None, ops: dict[int, list[float]],
              close: Any) -> None:
        """A record without children ended: an op's self time is all of it."""
        kid, ts, dur, end, region_parent, step, kind = pending
        if kind == OP and (parent is None or parent[_KIDS] != 1 or parent[_KID] != kid or parent[_KIND] != OP):
            row = ops.get(kid)
            if row is None:
                ops[kid] = [1, dur, dur]
            else:
                row[0] += 1
                row[1] += dur
                row[2] += dur
            return
        close([kid, ts, dur, end, 0.0, 0.0, region_parent, step, kind, 0, None], parent)

    def _close(self, frame: list[Any], parent: list[Any] | None) -> None:
        folded = frame[_FOLD]
        if folded is not None:  # the frame's only child had its name: the frame takes over its children
            frame[_CHILD] = folded[_CHILD]
            frame[_FOLD] = None
        if (
            frame[_KIND] == OP
            and parent is not None
            and parent[_KIDS] == 1
            and parent[_KIND] == OP
            and parent[_KID] == frame[_KID]
        ):
            parent[_FOLD] = frame
            return
        self._record(frame)

    def _record(self, frame: list[Any]) -> None:
        kind = frame[_KIND]
        dur = frame[_DUR]
        if kind == OP:
            row = self.ops.get(frame[_KID])
            if row is None:
                self.ops[frame[_KID]] = [1, dur, dur - frame[_CHILD]]
            else:
                row[0] += 1
                row[1] += dur
                row[2] += dur - frame[_CHILD]
        elif kind == REGION:
            own = dur - frame[_RCHILD]
            row = self.regions.get(frame[_KID])
            if row is None:
                self.regions[frame[_KID]] = [1, dur, own]
            else:
                row[0] += 1
                row[1] += dur
                row[2] += own
            parent = frame[_RPARENT]
            if parent is not None:
                parent[_RCHILD] += dur
            step = frame[_STEPNO]
            if step is not None:
                per_step = self.step_regions.setdefault(step, {})
                per_step[frame[_KID]] = per_step.get(frame[_KID], 0.0) + own
        elif kind == STEP:
            self.steps.append((frame[_STEPNO], frame[_TS], dur))
        frame[_RPARENT] = None  # let closed chains be freed
