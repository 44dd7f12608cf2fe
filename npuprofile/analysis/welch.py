"""Welch's confidence interval for the ratio of two means, from counts, means and variances only.

A comparison needs, per row and side, the number of samples, their mean and
their variance; nothing else (no raw samples, no random numbers), so saved
summaries compare as well as live ones and every result is reproducible.

The interval is for ``log(mean_new / mean_base)``: by the delta method its
standard error is ``sqrt(v_b / (n_b m_b²) + v_n / (n_n m_n²))``, with the
Welch-Satterthwaite degrees of freedom for unequal variances, and a Student t
quantile at the level asked for. Exponentiated, it bounds the ratio of the
means (asymmetric, as ratios are); minus one, it bounds the relative change.
``docs/compare.md`` says why this method and how well it holds its level.
"""

from __future__ import annotations

import dataclasses
import math
from statistics import NormalDist
from typing import Iterable

from npuprofile.errors import ConfigError

#: Above this many degrees of freedom the t distribution is the normal one to 1e-6.
_NORMAL_DF = 1e7
_CF_TINY = 1e-300
_CF_EPS = 3e-16
_CF_MAX_TERMS = 500


@dataclasses.dataclass(frozen=True)
class Moments:
    """``n`` samples summarized: their mean and unbiased sample variance."""

    n: int
    mean: float
    variance: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Moments:
        """The moments of ``values`` (two passes, so large means do not cost precision)."""
        data = [float(v) for v in values]
        n = len(data)
        if n == 0:
            return cls(0, 0.0, 0.0)
        mean = math.fsum(data) / n
        variance = math.fsum((v - mean) ** 2 for v in data) / (n - 1) if n > 1 else 0.0
        return cls(n, mean, variance)

    @classmethod
    def from_spread(cls, n: int, mean: float, population_std: float) -> Moments:
        """The moments of ``n`` samples given their mean and population standard deviation (divides by n)."""
        variance = population_std * population_std * n / (n - 1) if n > 1 else 0.0
        return cls(n, float(mean), variance)

    @property
    def total(self) -> float:
        """The sum of the samples."""
        return self.mean * self.n


def _continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularized incomplete beta function (modified Lentz)."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > _CF_TINY else _CF_TINY)
    result = d
    for m in range(1, _CF_MAX_TERMS + 1):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _CF_TINY else _CF_TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _CF_TINY else _CF_TINY
            result *= c * d
        if abs(c * d - 1.0) < _CF_EPS:
            return result
    return result  # pragma: no cover - converges in far fewer terms for the arguments used here


def regularized_beta(x: float, a: float, b: float) -> float:
    """``I_x(a, b)``, the regularized incomplete beta function, for ``0 <= x <= 1`` and ``a, b > 0``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _continued_fraction(b, a, 1.0 - x) / b


def student_t_upper_tail(t: float, df: float) -> float:
    """``P(T > t)`` for Student's t with ``df`` degrees of freedom (``t >= 0``)."""
    return 0.5 * regularized_beta(df / (df + t * t), df / 2.0, 0.5)


def student_t_quantile(p: float, df: float) -> float:
    """The ``p``-quantile of Student's t with ``df`` (real, > 0) degrees of freedom, for ``0.5 <= p < 1``."""
    if not 0.5 <= p < 1.0:
        raise ConfigError(f"p={p!r} is not allowed; allowed: 0.5 <= p < 1")
    if not df > 0:
        raise ConfigError(f"df={df!r} is not allowed; allowed: a number > 0")
    if p == 0.5:
        return 0.0
    if df > _NORMAL_DF:
        return NormalDist().inv_cdf(p)
    tail = 1.0 - p
    low, high = 0.0, 1.0
    while student_t_upper_tail(high, df) > tail:
        low, high = high, high * 2.0
    while high - low > 1e-12 * high:
        middle = (low + high) / 2.0
        if student_t_upper_tail(middle, df) > tail:
            low = middle
        else:
            high = middle
    return (low + high) / 2.0


@dataclasses.dataclass(frozen=True)
class RatioInterval:
    """The relative change ``mean_new / mean_base - 1`` and its confidence interval ``[low, high]``."""

    change: float
    low: float
    high: float
    degrees_of_freedom: float | None


def ratio_interval(base: Moments, new: Moments, confidence: float) -> RatioInterval:
    """Welch's two-sided interval, at ``confidence``, of the relative change of the mean from ``base`` to ``new``.

    Both sides need two samples or more and a positive mean. Zero variance on
    both sides gives an interval of the change alone.
    """
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence={confidence!r} is not allowed; allowed: 0 < confidence < 1")
    for side, moments in (("base", base), ("new", new)):
        if moments.n < 2 or not moments.mean > 0.0:
            raise ConfigError(f"{side} needs two samples or more and a positive mean; got {moments}")
    ratio = new.mean / base.mean
    part_base = base.variance / (base.n * base.mean * base.mean)
    part_new = new.variance / (new.n * new.mean * new.mean)
    spread = part_base + part_new
    if spread == 0.0:
        return RatioInterval(ratio - 1.0, ratio - 1.0, ratio - 1.0, None)
    denominator = part_base * part_base / (base.n - 1) + part_new * part_new / (new.n - 1)
    df = spread * spread / denominator if denominator > 0.0 else math.inf  # squares of tiny parts underflow
    margin = student_t_quantile(0.5 + confidence / 2.0, df) * math.sqrt(spread)
    return RatioInterval(ratio - 1.0, ratio * math.exp(-margin) - 1.0, ratio * math.exp(margin) - 1.0, df)
