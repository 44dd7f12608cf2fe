"""Shared timing helpers for the benchmark scripts: medians of repeats, ratios taken in one run."""

from __future__ import annotations

import statistics
import sys
import time
from typing import Callable


def per_call_ns(loop: Callable[[int], None], number: int, repeats: int = 7) -> float:
    """Median over ``repeats`` of the per-iteration cost of ``loop(number)``, in nanoseconds."""
    loop(max(1, number // 10))  # warm caches
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        loop(number)
        samples.append((time.perf_counter_ns() - start) / number)
    return statistics.median(samples)


def interleaved(
    loops: dict[str, Callable[[int], None]], number: int, repeats: int = 9, pick: Callable = statistics.median
) -> dict[str, float]:
    """Per-call medians (or ``pick``) of several loops measured in turn (so machine noise hits them alike)."""
    for loop in loops.values():
        loop(max(1, number // 10))
    samples: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(repeats):
        for name, loop in loops.items():
            start = time.perf_counter_ns()
            loop(number)
            samples[name].append((time.perf_counter_ns() - start) / number)
    return {name: pick(values) for name, values in samples.items()}


class Report:
    """Collects target checks and prints one line each; ``finish()`` exits non-zero on a miss."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.missed: list[str] = []
        print(f"== {title}")
        print(f"{'target':58} {'figure':>12} {'reference':>12} {'ratio':>7} {'limit':>6}  result")

    def check(self, name: str, figure: float, reference: float, limit: float, unit: str = "ns") -> float:
        ratio = figure / reference if reference else float("inf")
        ok = ratio <= limit
        if not ok:
            self.missed.append(name)
        print(
            f"{name:58} {figure:10.1f}{unit:>2} {reference:10.1f}{unit:>2} {ratio:7.3f} {limit:6.2f}  "
            + ("ok" if ok else "MISSED")
        )
        return ratio

    def finish(self) -> None:
        if self.missed:
            print(f"{self.title}: {len(self.missed)} target(s) missed: {', '.join(self.missed)}")
            sys.exit(1)
        print(f"{self.title}: all targets met")
