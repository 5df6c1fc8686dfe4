"""Design weights: frame units ÷ sampled units in a stratum, adjusted for non-response there.

Weights are exact fractions, so weighted point estimates stay exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fractions import Fraction

from sipas_scoring.domain.errors import DesignError


def design_weight(frame_units: int, sampled_units: int) -> Fraction:
    """How many frame units one sampled unit stands for: N_h ÷ n_h."""
    if sampled_units <= 0 or frame_units < sampled_units:
        raise DesignError(f"cannot weight {sampled_units} sampled of {frame_units} frame units")
    return Fraction(frame_units, sampled_units)


def nonresponse_adjusted(weight: Fraction, sampled_units: int, responding_units: int) -> Fraction:
    """The stratum's respondents carry its non-respondents too: w * n_h ÷ r_h."""
    if responding_units <= 0 or responding_units > sampled_units:
        raise DesignError(f"cannot adjust for {responding_units} respondents of {sampled_units} sampled")
    return weight * Fraction(sampled_units, responding_units)


def stratum_weights(
    frame_units: Mapping[str, int],
    sampled_units: Mapping[str, int],
    responding_units: Mapping[str, int] | None = None,
) -> dict[str, Fraction]:
    """Each stratum's respondent weight, N_h ÷ r_h (N_h ÷ n_h when no non-response is given)."""
    weights = {}
    for stratum, sampled in sampled_units.items():
        if stratum not in frame_units:
            raise DesignError(f"stratum {stratum!r} has no frame size")
        weight = design_weight(frame_units[stratum], sampled)
        if responding_units is not None:
            weight = nonresponse_adjusted(weight, sampled, responding_units.get(stratum, 0))
        weights[stratum] = weight
    return weights


def kish_effective_n(weights: Iterable[Fraction]) -> Fraction:
    """(Σw)² ÷ Σw²: the sample size equal weights would need for the same precision of a mean."""
    values = list(weights)
    squares = sum((w * w for w in values), Fraction(0))
    if not squares:
        raise DesignError("no positive weight")
    return sum(values, Fraction(0)) ** 2 / squares
