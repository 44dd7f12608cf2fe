"""Runs for comparison tests: timer-only sessions on a clock the test drives, with seeded noise.

Each region of a step takes ``mean_ns`` times a log-normal factor (spread
``sigma``, mean one) drawn from a generator seeded per run, so two runs of
"the same code" differ by noise alone and a test never depends on the load of
the machine it runs on.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Iterable, Mapping

import npuprofile as npp
from npuprofile.summary.model import Summary
from tests.fakes import ClockBackend, register_manual

OUTSIDE_NS = 40_000

#: The workload of the must-show runs: "work" made slower, "noisy" left alone, "steady" nearly constant.
WORKLOAD = {"work": (2_000_000, 0.05), "noisy": (1_000_000, 0.15), "steady": (500_000, 0.01)}


def noisy(rng: random.Random, mean_ns: float, sigma: float) -> int:
    """One duration: ``mean_ns`` times a log-normal factor of mean one."""
    return max(1, int(mean_ns * rng.lognormvariate(-sigma * sigma / 2, sigma)))


def manual_run(regions: Mapping[str, tuple[float, float]], *, seed: int, steps: int = 30,
               slower: Mapping[str, float] | None = None, adapter: ClockBackend | None = None) -> Summary:
    """One timer-only session of ``steps`` steps on the manual clock; ``slower[name]`` scales a region's time."""
    adapter = adapter or register_manual(npp.backends)
    clock: Any = adapter.clock
    rng = random.Random(seed)
    factors = dict(slower or {})
    with npp.session(backend="manual", trace=False) as session:
        for _ in session.steps(range(steps)):
            for name, (mean_ns, sigma) in regions.items():
                with npp.profile_region(name):
                    clock.advance(noisy(rng, mean_ns * factors.get(name, 1.0), sigma))
            clock.advance(OUTSIDE_NS)
    return session.summary()


def write_trace(path: Path, *, steps: int, seed: int, kernels: Iterable[str] = ("gemm", "relu"),
                forward_us: float = 800.0, sigma: float = 0.05) -> Path:
    """A small CUDA-like trace: ``ProfilerStep#N`` with a ``forward`` region, a host op and device kernels."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": 1, "tid": 0, "args": {"name": "python"}},
        {"ph": "M", "name": "process_name", "pid": 0, "tid": 0, "args": {"name": "GPU 0"}},
    ]
    t = 1_000_000.0
    for step in range(steps):
        forward = forward_us * rng.lognormvariate(-sigma * sigma / 2, sigma)
        events += [
            {"ph": "X", "cat": "user_annotation", "name": f"ProfilerStep#{step}", "pid": 1, "tid": 1, "ts": t,
             "dur": forward + 200},
            {"ph": "X", "cat": "user_annotation", "name": "forward", "pid": 1, "tid": 1, "ts": t + 10,
             "dur": forward},
            {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": t + 20, "dur": 30},
        ]
        for index, name in enumerate(kernels):
            events.append({"ph": "X", "cat": "kernel", "name": name, "pid": 0, "tid": 7,
                           "ts": t + 40 + 100 * index, "dur": 50})
        t += forward + 400
    path.write_text(json.dumps({"traceEvents": events}))
    return path

