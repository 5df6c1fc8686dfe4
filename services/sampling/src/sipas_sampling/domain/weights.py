"""Design weights and their non-response adjustment (METHODOLOGY §4), as exact fractions.

- design weight of a stratum = N_h / n_h (frame units per sampled unit);
- non-response adjustment within the stratum = n_h / r_h (sampled slots per responding slot), so the
  final weight is N_h / r_h and the respondents still stand for the whole stratum;
- a replacement fills the replaced unit's slot: it carries the same stratum weight, and a slot counts
  as responding when whoever holds it last responded.

A stratum where nobody responded has no final weight (``None``): whether to collapse it into a
neighbour is a methodological decision for the caller, not something to do silently here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction

from sipas_sampling.domain.draw import Draw
from sipas_sampling.domain.errors import InvalidParameter
from sipas_sampling.domain.replacement import Roster
from sipas_sampling.domain.strata import StratumKey, label


@dataclass(frozen=True)
class StratumOutcome:
    key: StratumKey
    population: int
    sampled: int
    responded: int


@dataclass(frozen=True)
class StratumWeight:
    key: StratumKey
    design: Fraction
    adjustment: Fraction | None
    final: Fraction | None


def design_weight(population: int, sampled: int) -> Fraction:
    if not 0 < sampled <= population:
        raise InvalidParameter(f"a design weight needs 0 < sampled ({sampled}) ≤ population ({population})",
                               field="sampled")
    return Fraction(population, sampled)


def stratum_weight(outcome: StratumOutcome) -> StratumWeight:
    design = design_weight(outcome.population, outcome.sampled)
    if not 0 <= outcome.responded <= outcome.sampled:
        raise InvalidParameter(f"stratum {label(outcome.key)}: {outcome.responded} respondents for "
                               f"{outcome.sampled} sampled slots", field="responded")
    if outcome.responded == 0:
        return StratumWeight(outcome.key, design, None, None)
    adjustment = Fraction(outcome.sampled, outcome.responded)
    return StratumWeight(outcome.key, design, adjustment, design * adjustment)


def stratum_weights(outcomes: Iterable[StratumOutcome]) -> dict[StratumKey, StratumWeight]:
    """Weights of every stratum that was sampled (strata with n_h = 0 carry no units, so no weight)."""
    return {o.key: stratum_weight(o) for o in outcomes if o.sampled > 0}


def outcomes(draw: Draw, rosters: dict[StratumKey, Roster], responded: Collection[str]) -> list[StratumOutcome]:
    """Per stratum: N_h, n_h, and how many slots' current units (after replacements) are in ``responded``."""
    result = []
    for stratum in draw.strata:
        active = rosters[stratum.key].active if stratum.key in rosters else stratum.selected
        answered = sum(1 for unit in active if unit.unit_id in responded)
        result.append(StratumOutcome(stratum.key, stratum.population, len(stratum.selected), answered))
    return result


def as_decimal(value: Fraction, places: int = 10) -> Decimal:
    """A weight as a decimal for events and reports, rounded half-even at ``places`` decimals
    (keep the fraction for arithmetic: N_h/n_h is rarely a finite decimal)."""
    with localcontext() as ctx:
        ctx.prec = 60
        return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(
            Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
