"""Confidence intervals for shares.

Intervals and variances are floats: they involve square roots and a normal quantile, are never
added up into a published point figure, and are shown rounded to two decimals, far above float
error. Point estimates stay exact elsewhere; only their interval is computed here.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Interval:
    lower: float
    upper: float

    def __post_init__(self) -> None:
        if not self.lower <= self.upper:
            raise ValueError(f"empty interval [{self.lower}, {self.upper}]")

    def contains(self, value: float) -> bool:
        return self.lower <= value <= self.upper

    def scaled(self, factor: float) -> Interval:
        """The same interval on another scale, e.g. *100 for an index shown in per cent."""
        return Interval(self.lower * factor, self.upper * factor)


@functools.lru_cache(maxsize=16)
def z_value(confidence: float = 0.95) -> float:
    """Two-sided normal quantile: 1.959963984540054 for 95%."""
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a simple share successes / n, on 0-1.

    centre = (p̂ + z²/2n) / (1 + z²/n);  half-width = z/(1 + z²/n) · √(p̂(1-p̂)/n + z²/4n²).
    At p̂ = 0 or 1 the matching bound is exactly 0 or 1 (the formula gives it up to float error).
    """
    if n <= 0:
        raise ValueError("a Wilson interval needs at least one observation")
    if not 0 <= successes <= n:
        raise ValueError("successes must be between 0 and n")
    z = z_value(confidence)
    p = successes / n
    z2n = z * z / n
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lower = 0.0 if successes == 0 else max(0.0, centre - half)
    upper = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(lower, upper)


def normal_interval(
    estimate: float, variance: float, confidence: float = 0.95, bounds: tuple[float, float] = (0.0, 1.0)
) -> Interval:
    """estimate ± z·√variance, clipped to ``bounds`` (a share cannot leave 0-1)."""
    if variance < 0:
        raise ValueError("a variance cannot be negative")
    half = z_value(confidence) * math.sqrt(variance)
    low, high = bounds
    return Interval(max(low, estimate - half), min(high, estimate + half))


def wilson_arrays(successes: NDArray[np.int64], n: NDArray[np.int64], confidence: float = 0.95
                  ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """:func:`wilson` of many shares at once (each n > 0): the same floats, operation for operation."""
    z = z_value(confidence)
    nf = n.astype(np.float64)
    p = successes / nf
    z2n = z * z / nf
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * np.sqrt(p * (1 - p) / nf + z * z / (4 * n * n).astype(np.float64))
    lower = np.where(successes == 0, 0.0, np.maximum(0.0, centre - half))
    upper = np.where(successes == n, 1.0, np.minimum(1.0, centre + half))
    return lower, upper
