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


def paired(
    figure: Callable[[], float], reference: Callable[[], float], rounds: int
) -> tuple[float, float, float]:
    """``(median ratio, median figure, median reference)`` over ``rounds`` rounds that run both sides back to back.

    Each call returns one measurement; which side goes first alternates. On a
    machine shared with other work, bursts of that work slow whole rounds
    down: both sides of a round see about the same machine, so each round's
    ratio keeps what the two sides differ by, and the median drops the rounds
    where a burst fell on one side only.
    """
    ratios: list[float] = []
    figures: list[float] = []
    references: list[float] = []
    for round_index in range(rounds):
        if round_index % 2:
            theirs = reference()
            ours = figure()
        else:
            ours = figure()
            theirs = reference()
        figures.append(ours)
        references.append(theirs)
        ratios.append(ours / theirs if theirs else float("inf"))
    return statistics.median(ratios), statistics.median(figures), statistics.median(references)


class Report:
    """Collects target checks and prints one line each; ``finish()`` exits non-zero on a miss."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.missed: list[str] = []
        print(f"== {title}")
        print(f"{'target':58} {'figure':>12} {'reference':>12} {'ratio':>7} {'limit':>6}  result")

    def check(
        self, name: str, figure: float, reference: float, limit: float, unit: str = "ns", ratio: float | None = None
    ) -> float:
        """One target line; ``ratio`` (a median of paired ratios, see :func:`paired`) replaces figure/reference."""
        if ratio is None:
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
