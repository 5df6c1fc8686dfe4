"""The ``share-satisfied`` scheme: shares of satisfied answers, as exact fractions of 100.

A missing answer (``None``, or an item the ballot does not carry) leaves numerator and denominator
alike. Which levels count as satisfied is the instrument's scale data (4 and 5 on the 1-5 scale).

Hierarchy: item → factor (mean of item indices, pooled answers, or the factor's overall item) →
overall (mean of factor indices, pooled over all criteria, or the overall item). An agency's figures
come from its ballots; a province's from its agencies' ballots pooled, as if they were one unit; the
national figure is the plain mean of province indices (as the Ministry reports it) or their
population-weighted mean. Each figure carries ``n``: the ballots with at least one valid answer
behind it, which is what small-cell suppression looks at.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from sipas_scoring.domain.errors import SchemeMismatch, ScoringError
from sipas_scoring.domain.scheme import Ballot, Factor, Instrument, NationalIndexRule, Scheme, check_on_scale

HUNDRED = 100
EXACT_FLOAT = 2**53
"""Integers below it are exact in float64, and so are sums of them below it (a float product of integer
arrays below it is exact: numpy's BLAS instead of its integer loops)."""


@dataclass(frozen=True)
class Tally:
    """Satisfied answers out of valid answers."""

    satisfied: int = 0
    valid: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.satisfied + other.satisfied, self.valid + other.valid)

    @property
    def index(self) -> Fraction | None:
        return share_index(self.satisfied, self.valid)


def share_index(satisfied: int, valid: int) -> Fraction | None:
    """satisfied / valid * 100 (None when nothing is valid)."""
    if not valid:
        return None
    key = (satisfied, valid)
    found = _INDICES.get(key)
    if found is None:  # the same few counts recur in every unit: each share made once per process
        if len(_INDICES) >= _INDICES_KEPT:
            _INDICES.clear()
        found = _INDICES[key] = Fraction(satisfied * HUNDRED, valid)
    return found


_INDICES: dict[tuple[int, int], Fraction] = {}
_INDICES_KEPT = 100_000


@dataclass(frozen=True)
class ShareIndex:
    """An index on 0-100 (``None``: nothing to score) and the ballots it rests on."""

    value: Fraction | None
    n: int


@dataclass(frozen=True)
class ShareScores:
    items: Mapping[str, ShareIndex]
    factors: Mapping[str, ShareIndex]
    overall: ShareIndex
    ballots: int


def tally(answers: Iterable[int | None], satisfied_levels: Collection[int]) -> Tally:
    total = Tally()
    for value in answers:
        if value is not None:
            total += Tally(int(value in satisfied_levels), 1)
    return total


def item_index(answers: Iterable[int | None], satisfied_levels: Collection[int] = (4, 5)) -> Fraction | None:
    """Answers in a satisfied level ÷ valid answers * 100; ``None`` when no answer is valid."""
    return tally(answers, satisfied_levels).index


def ballot_tally(ballot: Ballot, items: Iterable[str], satisfied_levels: Collection[int]) -> Tally:
    """One ballot's satisfied and valid answers over ``items``: the (y, x) of a ratio estimator."""
    return tally((ballot.answer(item) for item in items), satisfied_levels)


def mean(values: Iterable[Fraction | None]) -> Fraction | None:
    """Mean of the figures that exist; ``None`` when none does (an item nobody answered is skipped)."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    common = math.lcm(*(v.denominator for v in present))  # one reduction, not one per addition
    return Fraction(sum(v.numerator * (common // v.denominator) for v in present), common * len(present))


def score_shares(instrument: Instrument, scheme: Scheme, ballots: Sequence[Ballot]) -> ShareScores:
    """Every item, factor and overall index of one unit (agency, or a pooled province) by ``scheme``."""
    check_on_scale(instrument, ballots)
    satisfied = instrument.satisfied_levels

    def index_over(items: Sequence[str]) -> ShareIndex:
        tallies = [ballot_tally(b, items, satisfied) for b in ballots]
        pooled = sum(tallies, Tally())
        return ShareIndex(pooled.index, sum(1 for t in tallies if t.valid))

    def factor_basis(factor: Factor) -> tuple[str, ...]:
        if scheme.factor_index != "overall_item":
            return factor.items
        if factor.overall_item is None:
            raise SchemeMismatch(f"factor {factor.code} has no overall item")
        return (factor.overall_item,)

    items = {code: index_over((code,)) for code in instrument.criteria}
    factors: dict[str, ShareIndex] = {}
    for factor in instrument.factors:
        basis = factor_basis(factor)
        if scheme.factor_index == "mean_items":
            value = mean(items[code].value for code in basis)
            factors[factor.code] = ShareIndex(value, index_over(basis).n)
        else:
            factors[factor.code] = index_over(basis)

    if scheme.overall_index == "mean_factors":
        basis = tuple(code for factor in instrument.factors for code in factor_basis(factor))
        overall = ShareIndex(mean(f.value for f in factors.values()), index_over(basis).n)
    elif scheme.overall_index == "pooled":
        overall = index_over(instrument.criteria)
    else:
        if instrument.overall_item is None:
            raise SchemeMismatch("the instrument has no overall item")
        overall = index_over((instrument.overall_item,))
    return ShareScores(items=items, factors=factors, overall=overall, ballots=len(ballots))


def score_province(
    instrument: Instrument, scheme: Scheme, ballots_by_agency: Mapping[str, Sequence[Ballot]]
) -> ShareScores:
    """A province's figures from its agencies' ballots pooled (not a mean of agency indices)."""
    pooled = [ballot for ballots in ballots_by_agency.values() for ballot in ballots]
    return score_shares(instrument, scheme, pooled)


def national_index(
    province_indices: Mapping[str, Fraction | None],
    rule: NationalIndexRule = "mean_provinces",
    population: Mapping[str, int] | None = None,
) -> Fraction | None:
    """Mean of province indices, or their mean weighted by population; provinces without a figure drop out."""
    scored = {code: value for code, value in province_indices.items() if value is not None}
    if rule == "mean_provinces":
        return mean(scored.values())
    if population is None:
        raise ScoringError("a population-weighted national index needs each province's population")
    missing = sorted(set(scored) - set(population))
    if missing:
        raise ScoringError(f"no population for {', '.join(missing)}")
    total = sum(population[code] for code in scored)
    if total <= 0:
        return None
    return sum((value * population[code] for code, value in scored.items()), Fraction(0)) / total


def expectation_shares(ballots: Sequence[Ballot], options: Sequence[str]) -> dict[str, ShareIndex]:
    """Share of respondents choosing each improvement priority; shares may sum past 100.

    The denominator is the ballots that chose at least one option: a ballot that left the block
    blank did not answer it, and a missing answer is never counted (as everywhere in share schemes).
    """
    answering = [b for b in ballots if b.expectations]
    unknown = sorted({code for b in answering for code in b.expectations} - set(options))
    if unknown:
        raise ScoringError(f"unknown expectation options: {', '.join(unknown)}")
    n = len(answering)
    return {
        option: ShareIndex(
            Fraction(sum(option in b.expectations for b in answering) * HUNDRED, n) if n else None, n
        )
        for option in options
    }
