"""The estimator of :mod:`survey`, over arrays: the same numbers, fast enough for every unit of a
national round on every refresh.

:func:`survey.estimate_ratios` is the reference (pure Python, checked against R's ``survey``); this is
its columnar twin, and a property test keeps the two equal. Ballots come as rows of integer ``y`` and
``x`` per term and a *group* per row: ballots of one stratum sharing one weight. Point estimates stay
exact: totals are integer sums per group (exact in numpy's int64), multiplied by each group's exact
weight and added as fractions; only the variance is in floats, as in the reference, computed per
stratum in two passes (centre, then squared deviations) for accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from numpy.typing import NDArray

from sipas_scoring.domain.errors import DesignError
from sipas_scoring.domain.intervals import normal_interval
from sipas_scoring.domain.survey import LonelyStratum, SurveyEstimate, _coefficients


@dataclass(frozen=True)
class Groups:
    """Who shares a weight: ``weight[g]`` and ``stratum[g]`` of group ``g``."""

    weight: Sequence[Fraction]
    stratum: Sequence[str]

    def __post_init__(self) -> None:
        if len(self.weight) != len(self.stratum):
            raise DesignError("one stratum per weight group")
        if any(w <= 0 for w in self.weight):
            raise DesignError("a weight must be positive")


UNWEIGHTED = Groups((Fraction(1),), ("all",))


def estimate_arrays(
    group: NDArray[np.int64],
    groups: Groups,
    y: NDArray[np.int64],
    x: NDArray[np.int64],
    coefficients: Sequence[Fraction] | None = None,
    population: Mapping[str, int] | None = None,
    *,
    confidence: float = 0.95,
    lonely: LonelyStratum = "fail",
) -> SurveyEstimate:
    """θ = Σ c_k R_k with its Taylor variance, as :func:`survey.estimate_ratios` (``weighted=True``).

    ``group``: per row, its group index; ``y``/``x``: rows by terms. For the unweighted estimate pass
    every row in group 0 of :data:`UNWEIGHTED` and no population.
    """
    n, terms = y.shape
    if n == 0:
        raise DesignError("no observations")
    if x.shape != (n, terms) or group.shape != (n,) or terms == 0:
        raise DesignError("observations disagree on the number of terms")
    g_count = len(groups.weight)
    sum_y, sum_x = _group_sums(group, y, g_count), _group_sums(group, x, g_count)
    present = np.flatnonzero(sum_x.any(axis=1) | sum_y.any(axis=1)).tolist()
    # Exact: each group's weight times the weights' common denominator is an integer.
    common = math.lcm(*(groups.weight[g].denominator for g in present)) if present else 1
    scaled = [(groups.weight[g].numerator * (common // groups.weight[g].denominator), g) for g in present]
    columns_x, columns_y = sum_x.tolist(), sum_y.tolist()
    totals_x = [Fraction(sum(w * columns_x[g][k] for w, g in scaled), common) for k in range(terms)]
    totals_y = [Fraction(sum(w * columns_y[g][k] for w, g in scaled), common) for k in range(terms)]
    coeffs = _coefficients(coefficients, totals_x, terms)
    ratios = [totals_y[k] / totals_x[k] if totals_x[k] else Fraction(0) for k in range(terms)]
    estimate = sum((c * r for c, r in zip(coeffs, ratios, strict=True)), Fraction(0))

    scale = np.zeros(terms)
    rate = np.zeros(terms)
    for k in range(terms):
        if coeffs[k]:
            scale[k] = float(coeffs[k]) / float(totals_x[k])
            rate[k] = float(ratios[k])
    z = (y - x * rate) @ scale
    weights = np.array([float(w) for w in groups.weight])[group]
    names = sorted(set(groups.stratum))
    code = {name: i for i, name in enumerate(names)}
    stratum = np.array([code[s] for s in groups.stratum], dtype=np.int64)[group]
    variance = _stratified_variance(stratum, names, weights * z, population, lonely)

    answering = x.any(axis=1)
    frame = None if population is None else sum(population[names[s]] for s in np.unique(stratum))
    srs = _srs_variance(weights[answering], z[answering], n, frame)
    deff = variance / srs if srs else None
    return SurveyEstimate(estimate, variance, normal_interval(float(estimate), variance, confidence),
                          int(answering.sum()), deff)


_EXACT_IN_FLOAT = 2**53


def _group_sums(group: NDArray[np.int64], values: NDArray[np.int64], g_count: int) -> NDArray[np.int64]:
    """Each group's column sums, exactly: ``bincount`` adds in float64, exact while every sum stays under
    2**53 (ballots' counts are far below it; ``np.add.at``, always exact, is the fallback and half as fast)."""
    if int(np.abs(values).sum()) >= _EXACT_IN_FLOAT:
        out = np.zeros((g_count, values.shape[1]), dtype=np.int64)
        np.add.at(out, group, values)
        return out
    return np.stack([np.bincount(group, weights=values[:, k], minlength=g_count)
                     for k in range(values.shape[1])], axis=1).astype(np.int64)


def _stratified_variance(stratum: NDArray[np.int64], names: Sequence[str], u: NDArray[np.float64],
                         population: Mapping[str, int] | None, lonely: LonelyStratum) -> float:
    counts = np.bincount(stratum, minlength=len(names))
    centre = np.bincount(stratum, weights=u, minlength=len(names)) / np.maximum(counts, 1)
    spread = np.bincount(stratum, weights=(u - centre[stratum]) ** 2, minlength=len(names))
    variance = 0.0
    for s, name in enumerate(names):
        n_h = int(counts[s])
        if n_h == 0:
            continue
        if n_h < 2:
            if lonely == "fail":
                raise DesignError(f"stratum {name!r} has a single ballot: its variance is unknown")
            continue
        fpc = 1.0
        if population is not None:
            if name not in population or population[name] < n_h:
                raise DesignError(f"stratum {name!r} needs a frame size of at least {n_h}")
            fpc = 1 - n_h / population[name]
        variance += fpc * n_h / (n_h - 1) * float(spread[s])
    return variance


def _srs_variance(weights: NDArray[np.float64], z: NDArray[np.float64], sampled: int,
                  frame: int | None) -> float | None:
    n = len(weights)
    if n < 2:
        return None
    if float(np.ptp(z)) <= 1e-12 * max(1.0, float(np.abs(z).max())):
        return 0.0  # every ballot alike: no spread (rounding noise must not make a design effect of it)
    total_w = float(weights.sum())
    mean_z = float((weights * z).sum()) / total_w
    spread = float((weights * (z - mean_z) ** 2).sum()) / total_w
    variance = total_w**2 / n * spread * n / (n - 1)
    if frame is not None:
        variance *= 1 - sampled / frame
    return variance
