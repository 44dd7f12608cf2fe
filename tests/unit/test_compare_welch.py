"""Welch's interval for a ratio of means: the t distribution, the moments, the interval's shape.

How often the intervals err is checked by simulation in tests/integration/test_compare_calibration.py.
"""

from __future__ import annotations

import statistics
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npuprofile.analysis.welch import Moments, ratio_interval, regularized_beta, student_t_quantile
from npuprofile.errors import ConfigError

# Student t quantiles from printed tables (p, df, value).
T_TABLE = [
    (0.975, 1, 12.7062), (0.975, 2, 4.3027), (0.975, 5, 2.5706), (0.975, 10, 2.2281), (0.975, 30, 2.0423),
    (0.995, 5, 4.0321), (0.995, 20, 2.8453), (0.9995, 10, 4.5869), (0.9995, 3, 12.9240), (0.95, 15, 1.7531),
]


@pytest.mark.parametrize(("p", "df", "expected"), T_TABLE)
def test_t_quantiles_match_tables(p: float, df: int, expected: float) -> None:
    assert student_t_quantile(p, df) == pytest.approx(expected, abs=5e-4)


def test_t_quantile_tends_to_the_normal_one() -> None:
    normal = statistics.NormalDist().inv_cdf(0.975)
    assert student_t_quantile(0.975, 1e5) == pytest.approx(normal, abs=1e-4)
    assert student_t_quantile(0.975, 1e9) == pytest.approx(normal, abs=1e-9)
    assert student_t_quantile(0.5, 7) == 0.0


def test_t_quantile_of_fractional_df_lies_between_its_neighbours() -> None:
    assert student_t_quantile(0.99, 4) > student_t_quantile(0.99, 4.5) > student_t_quantile(0.99, 5)


@given(x=st.floats(1e-6, 1 - 1e-6), a=st.floats(0.1, 50), b=st.floats(0.1, 50))  # 1 - x stays exact enough
def test_regularized_beta_is_a_probability_with_its_symmetry(x: float, a: float, b: float) -> None:
    value = regularized_beta(x, a, b)
    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(1.0 - regularized_beta(1.0 - x, b, a), abs=1e-9)


def test_regularized_beta_known_values() -> None:
    assert regularized_beta(0.5, 3, 3) == pytest.approx(0.5)
    assert regularized_beta(0.3, 1, 1) == pytest.approx(0.3)  # the uniform distribution
    assert regularized_beta(0.2, 2, 1) == pytest.approx(0.04)  # x**a for b == 1


@pytest.mark.parametrize(("p", "df"), [(0.4, 5), (1.0, 5), (0.975, 0), (0.975, -1)])
def test_t_quantile_refuses_bad_arguments(p: float, df: float) -> None:
    with pytest.raises(ConfigError):
        student_t_quantile(p, df)


@settings(max_examples=50)
@given(st.lists(st.integers(0, 10**9), min_size=2, max_size=40))
def test_moments_from_a_spread_equal_those_of_the_values(values: list[int]) -> None:
    direct = Moments.of(values)
    assert direct.mean == pytest.approx(statistics.fmean(values))
    assert direct.variance == pytest.approx(statistics.variance(values), rel=1e-9, abs=1e-6)
    spread = Moments.from_spread(len(values), direct.mean, statistics.pstdev(values))
    assert spread.n == direct.n and spread.variance == pytest.approx(direct.variance, rel=1e-9, abs=1e-6)
    assert direct.total == pytest.approx(sum(values))


def test_interval_of_constant_samples_is_the_change_itself() -> None:
    result = ratio_interval(Moments(10, 100.0, 0.0), Moments(10, 125.0, 0.0), 0.95)
    assert result.change == result.low == result.high == pytest.approx(0.25)


@given(st.floats(1.0, 1e6), st.floats(1.0, 1e6), st.floats(0.0, 0.5), st.floats(0.0, 0.5), st.integers(2, 200))
def test_swapping_sides_inverts_the_ratio_interval(base: float, new: float, cv_b: float, cv_n: float, n: int) -> None:
    forward = ratio_interval(Moments(n, base, (cv_b * base) ** 2), Moments(n + 3, new, (cv_n * new) ** 2), 0.99)
    backward = ratio_interval(Moments(n + 3, new, (cv_n * new) ** 2), Moments(n, base, (cv_b * base) ** 2), 0.99)
    assert forward.low <= forward.change <= forward.high
    # 1 + low of a very wide interval is a tiny difference of floats near 1: allow its rounding, not more.
    rounding = 4 * sys.float_info.epsilon
    assert 1 + backward.low == pytest.approx(1 / (1 + forward.high), rel=1e-9 + rounding / (1 + backward.low))
    assert 1 + backward.high == pytest.approx(1 / (1 + forward.low), rel=1e-9 + rounding / (1 + forward.low))


def test_higher_confidence_gives_a_wider_interval() -> None:
    base, new = Moments(20, 100.0, 25.0), Moments(20, 104.0, 30.0)
    narrow, wide = ratio_interval(base, new, 0.9), ratio_interval(base, new, 0.999)
    assert wide.low < narrow.low < narrow.change < narrow.high < wide.high


@pytest.mark.parametrize(("base", "new", "confidence"), [
    (Moments(1, 10.0, 0.0), Moments(5, 10.0, 1.0), 0.95),
    (Moments(5, 0.0, 0.0), Moments(5, 10.0, 1.0), 0.95),
    (Moments(5, 10.0, 1.0), Moments(5, 10.0, 1.0), 1.0),
])
def test_interval_refuses_what_it_cannot_test(base: Moments, new: Moments, confidence: float) -> None:
    with pytest.raises(ConfigError):
        ratio_interval(base, new, confidence)
