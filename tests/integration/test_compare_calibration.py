"""Calibration of the comparison by simulation: how often intervals and verdicts err over many pairs.

Thousands of simulated pairs of runs (log-normal samples, runs of identical
code on a driven clock) check that the stated confidence is the one delivered.
"""

from __future__ import annotations

import math
import random

import pytest

import npuprofile as npp
from npuprofile.analysis.compare import FASTER, SLOWER, compare
from npuprofile.analysis.welch import Moments, ratio_interval
from tests._compare_runs import manual_run
from tests.fakes import register_manual


@pytest.fixture
def adapter():
    return register_manual(npp.backends)


def _error_rates(sigma: float, n: int, shift: float, trials: int, confidence: float, seed: int) -> tuple[float, float]:
    """Share of intervals excluding zero change, and share missing the true change, over ``trials`` pairs."""
    rng = random.Random(seed)
    true_change = math.exp(shift) - 1
    excluded_zero = missed_truth = 0
    for _ in range(trials):
        base = Moments.of(rng.lognormvariate(0, sigma) for _ in range(n))
        new = Moments.of(rng.lognormvariate(shift, sigma) for _ in range(n))
        result = ratio_interval(base, new, confidence)
        excluded_zero += result.low > 0 or result.high < 0
        missed_truth += not result.low <= true_change <= result.high
    return excluded_zero / trials, missed_truth / trials


@pytest.mark.parametrize(("sigma", "n"), [(0.1, 5), (0.3, 10), (0.3, 30), (0.6, 30)])
def test_intervals_err_about_as_often_as_their_confidence_says(sigma: float, n: int) -> None:
    # Skewed (log-normal) samples like timings; 1000 pairs at 90% should miss about 100 times (binomial sd ~9.5).
    false_alarms, _ = _error_rates(sigma, n, 0.0, 1000, 0.90, seed=n)
    assert 0.06 <= false_alarms <= 0.14
    _, misses = _error_rates(sigma, n, 0.2, 1000, 0.90, seed=n + 1)
    assert 0.06 <= misses <= 0.14


def test_a_quarter_slower_is_seen_with_thirty_samples_of_ten_percent_noise() -> None:
    excluded, _ = _error_rates(0.1, 30, math.log(1.25), 200, 0.99, seed=3)
    assert excluded == 1.0


def test_false_alarms_stay_within_the_family_confidence(adapter) -> None:
    # With no threshold only the statistics decide: of 200 pairs of identical code, about 5% (at most ~10%,
    # three binomial standard deviations) may flag any row; a method that never errs would be too cautious.
    regions = {f"r{i}": (1_000_000, 0.1 + 0.05 * i) for i in range(6)}
    alarms = 0
    for pair in range(200):
        result = compare(manual_run(regions, seed=2 * pair, steps=20, adapter=adapter),
                         manual_run(regions, seed=2 * pair + 1, steps=20, adapter=adapter), threshold=0)
        alarms += any(row.verdict in (SLOWER, FASTER) for row in result.rows)
    assert 1 <= alarms <= 20
