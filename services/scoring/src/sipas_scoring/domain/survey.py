"""Stratified weighted estimates of shares, with Taylor-linearisation variance.

Design: stratified simple random sampling without replacement; each responding ballot carries its
stratum's weight (see :mod:`weights`). An index is a linear combination of ratios,

    θ = Σ_k c_k · R_k,   R_k = Σ_i w_i y_ik ÷ Σ_i w_i x_ik,

where for a share y is a ballot's satisfied answers and x its valid answers to term k's items: one
term for an item or pooled index, one per item (c_k = 1/K) for a mean of item indices, and nested
coefficients for a mean of factor means. The point estimate θ is exact (fractions).

Variance (floats; see :mod:`intervals`): linearise, z_i = Σ_k c_k (y_ik - R_k x_ik) ÷ X̂_k, then

    V(θ) = Σ_h (1 - f_h) · n_h/(n_h - 1) · Σ_{i∈h} (w_i z_i - mean_h(w z))²,

with f_h = n_h ÷ N_h when frame sizes are given (finite population correction), else 0. n_h counts
every ballot of the stratum, answering or not, which is the correct domain estimator.

Design effect = V(θ) ÷ V_srs(θ), where V_srs is the variance of the same estimator under simple
random sampling of the same number of answering ballots: V_srs = N̂_d²/n_d · S²_z, S²_z the weighted
population variance of z over the answering ballots (divisor n_d - 1 correction), times (1 - n/N)
when the design variance carries a finite population correction. Effective sample size = n_d ÷ deff.
For a single stratum with equal weights the design effect is exactly 1.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from sipas_scoring.domain.errors import DesignError
from sipas_scoring.domain.intervals import Interval, normal_interval

LonelyStratum = Literal["fail", "certainty"]


@dataclass(frozen=True)
class Observation:
    """One responding ballot: its stratum, its weight, and (y, x) per ratio term."""

    stratum: str
    weight: Fraction
    y: tuple[int, ...]
    x: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.y) != len(self.x) or not self.y:
            raise DesignError("an observation needs one (y, x) pair per term")
        if self.weight <= 0:
            raise DesignError("a weight must be positive")

    @classmethod
    def single(cls, stratum: str, weight: Fraction | int, y: int, x: int = 1) -> Observation:
        return cls(stratum, Fraction(weight), (y,), (x,))

    @property
    def answering(self) -> bool:
        return any(self.x)


@dataclass(frozen=True)
class SurveyEstimate:
    estimate: Fraction
    """θ on 0-1, exact."""
    variance: float
    interval: Interval
    n: int
    """Answering ballots (at least one x > 0)."""
    design_effect: float | None

    @property
    def standard_error(self) -> float:
        return self.variance**0.5

    @property
    def effective_n(self) -> float | None:
        if self.design_effect is None or self.design_effect <= 0:
            return None
        return self.n / self.design_effect


def estimate_ratios(
    observations: Sequence[Observation],
    coefficients: Sequence[Fraction] | None = None,
    population: Mapping[str, int] | None = None,
    *,
    weighted: bool = True,
    confidence: float = 0.95,
    lonely: LonelyStratum = "fail",
) -> SurveyEstimate:
    """θ = Σ c_k R_k with its Taylor variance, interval, design effect and effective n.

    ``coefficients`` default to a plain mean of the terms that have any answer (as
    :func:`shares.mean` skips an item nobody answered); given explicitly, every term must have one.
    ``population`` maps strata to frame sizes and switches on the finite population correction.
    ``weighted=False`` gives the unweighted estimate: every ballot weight 1, one stratum, no FPC.
    """
    if not observations:
        raise DesignError("no observations")
    if not weighted:
        observations = [Observation("all", Fraction(1), o.y, o.x) for o in observations]
        population = None
    terms = len(observations[0].y)
    if any(len(o.y) != terms for o in observations):
        raise DesignError("observations disagree on the number of terms")
    # Exact totals in integers: every weight times the weights' common denominator is an integer, and
    # dividing once at the end gives the same fractions as adding fractions, many times faster.
    common = math.lcm(*(o.weight.denominator for o in observations))
    scaled = [o.weight.numerator * (common // o.weight.denominator) for o in observations]
    totals_x = [Fraction(sum(w * o.x[k] for w, o in zip(scaled, observations, strict=True)), common)
                for k in range(terms)]
    totals_y = [Fraction(sum(w * o.y[k] for w, o in zip(scaled, observations, strict=True)), common)
                for k in range(terms)]
    coeffs = _coefficients(coefficients, totals_x, terms)
    ratios = [totals_y[k] / totals_x[k] if totals_x[k] else Fraction(0) for k in range(terms)]
    estimate = sum((c * r for c, r in zip(coeffs, ratios, strict=True)), Fraction(0))

    scale = [(k, float(ratios[k]), float(coeffs[k]) / float(totals_x[k])) for k in range(terms) if coeffs[k]]

    def linearised(o: Observation) -> float:
        return sum(c * (o.y[k] - r * o.x[k]) for k, r, c in scale)

    z = [linearised(o) for o in observations]
    variance = _stratified_variance(observations, z, population, lonely)
    answering = [(o, zi) for o, zi in zip(observations, z, strict=True) if o.answering]
    frame = None if population is None else sum(population[s] for s in {o.stratum for o in observations})
    srs = _srs_variance(answering, len(observations), frame)
    deff = variance / srs if srs else None
    interval = normal_interval(float(estimate), variance, confidence)
    return SurveyEstimate(estimate, variance, interval, len(answering), deff)


def _coefficients(given: Sequence[Fraction] | None, totals_x: Sequence[Fraction] | Sequence[int],
                  terms: int) -> list[Fraction]:
    """The terms' coefficients: as given (each term with one must have an answer), else the plain mean of the
    terms answered. ``totals_x`` only says which terms have answers (fractions or integer totals alike)."""
    if given is not None:
        if len(given) != terms:
            raise DesignError("one coefficient per term")
        if any(c and not x for c, x in zip(given, totals_x, strict=True)):
            raise DesignError("a term with a coefficient has no answer")
        return [c if isinstance(c, Fraction) else Fraction(c) for c in given]
    answered = [k for k in range(terms) if totals_x[k]]
    if not answered:
        raise DesignError("no term has an answer")
    share = Fraction(1, len(answered))
    return [share if totals_x[k] else Fraction(0) for k in range(terms)]


def _stratified_variance(
    observations: Sequence[Observation],
    z: Sequence[float],
    population: Mapping[str, int] | None,
    lonely: LonelyStratum,
) -> float:
    strata: dict[str, list[float]] = defaultdict(list)
    for o, zi in zip(observations, z, strict=True):
        strata[o.stratum].append(float(o.weight) * zi)
    variance = 0.0
    for stratum, values in strata.items():
        n_h = len(values)
        if n_h < 2:
            if lonely == "fail":
                raise DesignError(f"stratum {stratum!r} has a single ballot: its variance is unknown")
            continue
        fpc = 1.0
        if population is not None:
            if stratum not in population or population[stratum] < n_h:
                raise DesignError(f"stratum {stratum!r} needs a frame size of at least {n_h}")
            fpc = 1 - n_h / population[stratum]
        centre = sum(values) / n_h
        variance += fpc * n_h / (n_h - 1) * sum((v - centre) ** 2 for v in values)
    return variance


def _srs_variance(answering: Sequence[tuple[Observation, float]], sampled: int, frame: int | None) -> float | None:
    n = len(answering)
    if n < 2:
        return None
    z = [zi for _, zi in answering]
    if max(z) - min(z) <= 1e-12 * max(1.0, max(abs(v) for v in z)):
        return 0.0  # every ballot alike: no spread (rounding noise must not make a design effect of it)
    weights = [float(o.weight) for o, _ in answering]
    total_w = sum(weights)
    mean_z = sum(w * zi for w, (_, zi) in zip(weights, answering, strict=True)) / total_w
    spread = sum(w * (zi - mean_z) ** 2 for w, (_, zi) in zip(weights, answering, strict=True)) / total_w
    variance = total_w**2 / n * spread * n / (n - 1)
    if frame is not None:
        variance *= 1 - sampled / frame
    return variance
