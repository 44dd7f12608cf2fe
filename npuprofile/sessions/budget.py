"""A size budget for a capture's traces (``max_trace_mb``): measure one step, then decide what to keep.

A capture with a budget records its first step as a trace of its own (the
probe) and reads it: how many bytes a step takes, and how many of them each
costly option adds (``with_stack``: Python function events; ``profile_memory``:
allocator events; ``record_shapes``: input shapes and types of each op). If
the remaining steps would not fit, options are dropped in the order
:data:`DROP_ORDER`, then steps, until the estimate fits; the rest of the
capture is recorded with what is left, in a second trace.

Only Chrome traces are read; for a trace npuprofile cannot read before
analysis (a torch_npu profiling directory), the probe's size alone decides
how many steps fit and no option is dropped.
"""

from __future__ import annotations

import dataclasses
import gzip
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import orjson

__all__ = ["DROP_ORDER", "Decision", "Probe", "decide", "measure"]

MIB = 1 << 20
#: What is given up first when a capture would not fit its budget (steps come after all of these).
DROP_ORDER = ("with_stack", "profile_memory", "record_shapes")
#: The estimate aims this far below the budget, for step-to-step variation.
HEADROOM = 0.97
_SHAPE_ARGS = ("Input Dims", "Input type", "Input Strides", "Concrete Inputs")
_SAMPLE = 1 << 20


@dataclasses.dataclass(frozen=True)
class Probe:
    """What one recorded step costs on disk, in bytes.

    ``fixed`` is what every trace file holds whatever its length (header,
    process and thread names, the frames around the loop); ``step`` is one
    step with the options it was recorded with, and ``option_bytes`` the part
    of ``step`` each option added (``fixed_option_bytes``: of ``fixed``).
    ``ratio`` is on-disk bytes per written byte (below 1 for gzip).
    """

    on_disk: int
    fixed: float
    step: float
    option_bytes: dict[str, float]
    ratio: float = 1.0
    readable: bool = True
    fixed_option_bytes: dict[str, float] = dataclasses.field(default_factory=dict)

    def step_without(self, dropped: Iterable[str]) -> float:
        """Bytes of one step once the options ``dropped`` are off."""
        return max(0.0, self.step - sum(self.option_bytes.get(name, 0.0) for name in dropped))

    def fixed_without(self, dropped: Iterable[str]) -> float:
        """Bytes of a trace's fixed part once the options ``dropped`` are off."""
        return max(0.0, self.fixed - sum(self.fixed_option_bytes.get(name, 0.0) for name in dropped))


@dataclasses.dataclass(frozen=True)
class Decision:
    """What the rest of a capture keeps: options dropped, steps it records after the probe, estimated MiB."""

    dropped: tuple[str, ...]
    steps: int
    estimate_bytes: int

    @property
    def dropped_steps(self) -> bool:
        """Whether steps had to go too."""
        return "steps" in self.dropped

    def to_dict(self, budget_mb: float, probe: Probe, requested: int) -> dict[str, Any]:
        """JSON-ready view for summary metadata."""
        return {
            "max_trace_mb": budget_mb,
            "probe_mb": round(probe.on_disk / MIB, 3),
            "estimated_mb": round(self.estimate_bytes / MIB, 3),
            "dropped": list(self.dropped),
            "steps_requested": requested,
            "steps_kept": 1 + self.steps,
        }


def measure(paths: Sequence[Path], compress: bool) -> Probe:
    """Read the probe's trace files (one step) and tell what a step and its options cost."""
    on_disk = sum(_size(path) for path in paths)
    files = [path for path in paths if path.is_file() and path.name.endswith((".json", ".json.gz"))]
    if len(files) != 1:
        return Probe(on_disk=on_disk, fixed=0.0, step=float(on_disk), option_bytes={}, readable=False)
    raw = _read(files[0])
    try:
        document = orjson.loads(raw)
        events = document["traceEvents"] if isinstance(document, dict) else document
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return Probe(on_disk=on_disk, fixed=0.0, step=float(on_disk), option_bytes={}, readable=False)
    header = {key: value for key, value in document.items() if key != "traceEvents"} if isinstance(document, dict) else {}
    fixed = len(orjson.dumps(header))
    total = fixed
    stack = memory = shapes = fixed_stack = 0
    begin = _step_start(events)
    for event in events:
        size = len(orjson.dumps(event)) + 1
        total += size
        # metadata, and what began before the step (the frames around the loop, the profiler's own range),
        # come once per trace, whatever its length
        if not isinstance(event, dict) or event.get("ph") == "M" or _before(event, begin):
            fixed += size
            if isinstance(event, dict) and event.get("cat") == "python_function":
                fixed_stack += size
            continue
        category = event.get("cat")
        if category == "python_function":
            stack += size
            continue
        if category == "cpu_instant_event" and event.get("name") == "[memory]":
            memory += size
            continue
        args = event.get("args")
        if isinstance(args, dict):
            shapes += sum(len(orjson.dumps({key: args[key]})) for key in _SHAPE_ARGS if key in args)
    scale = len(raw) / max(1, total)  # the profiler's indentation and spacing, spread evenly
    ratio = _compression_ratio(raw) if compress else 1.0
    if compress and not files[0].name.endswith(".gz"):  # written plain now, compressed later
        on_disk = int(len(raw) * ratio)
    return Probe(
        on_disk=on_disk, fixed=fixed * scale, step=(total - fixed) * scale,
        option_bytes={"with_stack": stack * scale, "profile_memory": memory * scale, "record_shapes": shapes * scale},
        ratio=ratio, fixed_option_bytes={"with_stack": fixed_stack * scale},
    )


def decide(probe: Probe, enabled: Iterable[str], steps_left: int, budget_mb: float) -> Decision:
    """What the ``steps_left`` steps after the probe keep within ``budget_mb`` MiB (probe included).

    ``enabled`` names the options of :data:`DROP_ORDER` the capture was
    recorded with; they are dropped in that order, then steps, until the
    estimate fits.
    """
    target = budget_mb * MIB * HEADROOM
    room = target - probe.on_disk
    on = [name for name in DROP_ORDER if name in set(enabled)] if probe.readable else []
    dropped: list[str] = []

    def estimate(steps: int) -> float:
        if steps <= 0:
            return 0.0
        return probe.ratio * (probe.fixed_without(dropped) + steps * probe.step_without(dropped))

    for name in [None, *on]:
        if name is not None:
            dropped.append(name)
        if estimate(steps_left) <= room:
            return Decision(tuple(dropped), steps_left, int(probe.on_disk + estimate(steps_left)))
    per_step = probe.ratio * probe.step_without(dropped)
    fits = math.floor((room - probe.ratio * probe.fixed_without(dropped)) / per_step) if per_step > 0 else steps_left
    steps = max(0, min(steps_left, fits))
    return Decision((*dropped, "steps"), steps, int(probe.on_disk + estimate(steps)))


def _step_start(events: Sequence[Any]) -> float | None:
    starts = [_time(event) for event in events
              if isinstance(event, dict) and str(event.get("name", "")).startswith("ProfilerStep#")]
    numbers = [ts for ts in starts if ts is not None]
    return min(numbers) if numbers else None


def _time(event: dict[str, Any]) -> float | None:
    """An event's start (``ts`` may be a number or, in torch_npu's traces, a string), or ``None``."""
    try:
        return float(event["ts"])
    except (KeyError, TypeError, ValueError):
        return None


def _before(event: dict[str, Any], begin: float | None) -> bool:
    ts = _time(event) if begin is not None else None
    return ts is not None and begin is not None and ts < begin


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(child.stat().st_size for child in path.rglob("*") if child.is_file())
    return path.stat().st_size if path.exists() else 0


def _read(path: Path) -> bytes:
    if path.name.endswith(".gz"):
        with gzip.open(path, "rb") as handle:
            return handle.read()
    return path.read_bytes()


def _compression_ratio(raw: bytes) -> float:
    sample = raw[:_SAMPLE]
    return len(gzip.compress(sample, compresslevel=6)) / max(1, len(sample))
