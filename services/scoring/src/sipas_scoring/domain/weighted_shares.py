"""``share-satisfied`` indices as survey ratios: which terms and coefficients each index is.

With these, :func:`survey.estimate_ratios` gives the weighted index (and its interval) of exactly
the figure :func:`shares.score_shares` computes unweighted: with equal weights the two agree.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from sipas_scoring.domain.errors import DesignError, SchemeMismatch
from sipas_scoring.domain.scheme import Ballot, Factor, Instrument, Scheme
from sipas_scoring.domain.shares import ballot_tally
from sipas_scoring.domain.survey import Observation


@dataclass(frozen=True)
class Terms:
    """An index as Σ c_k · (share of satisfied answers over the items of term k)."""

    items: tuple[tuple[str, ...], ...] = ()
    coefficients: tuple[Fraction, ...] = ()

    def scaled(self, factor: Fraction) -> Terms:
        return Terms(self.items, tuple(c * factor for c in self.coefficients))

    def __add__(self, other: Terms) -> Terms:
        return Terms(self.items + other.items, self.coefficients + other.coefficients)


def answered_items(ballots: Sequence[Ballot]) -> frozenset[str]:
    return frozenset(item for b in ballots for item, value in b.answers.items() if value is not None)


def factor_terms(factor: Factor, scheme: Scheme, answered: Collection[str]) -> Terms:
    """The terms of a factor index under ``scheme.factor_index``; empty when nobody answered."""
    if scheme.factor_index == "mean_items":
        items = [(code,) for code in factor.items if code in answered]
        return Terms(tuple(items), tuple(Fraction(1, len(items)) for _ in items))
    if scheme.factor_index == "pooled":
        return Terms((factor.items,), (Fraction(1),)) if answered_any(factor.items, answered) else Terms()
    if factor.overall_item is None:
        raise SchemeMismatch(f"factor {factor.code} has no overall item")
    return Terms(((factor.overall_item,),), (Fraction(1),)) if factor.overall_item in answered else Terms()


def overall_terms(instrument: Instrument, scheme: Scheme, answered: Collection[str]) -> Terms:
    """The terms of the overall index under ``scheme.overall_index``; empty when nobody answered."""
    if scheme.overall_index == "mean_factors":
        parts = [t for t in (factor_terms(f, scheme, answered) for f in instrument.factors) if t.items]
        total = Terms()
        for part in parts:
            total += part.scaled(Fraction(1, len(parts)))
        return total
    if scheme.overall_index == "pooled":
        criteria = instrument.criteria
        return Terms((criteria,), (Fraction(1),)) if answered_any(criteria, answered) else Terms()
    if instrument.overall_item is None:
        raise SchemeMismatch("the instrument has no overall item")
    item = instrument.overall_item
    return Terms(((item,),), (Fraction(1),)) if item in answered else Terms()


def share_observations(
    ballots: Sequence[Ballot],
    terms: Terms,
    satisfied_levels: Collection[int],
    design: Mapping[str, tuple[str, Fraction]],
) -> list[Observation]:
    """One observation per ballot: y = satisfied, x = valid answers per term; ``design`` maps a
    ballot id to its (stratum, weight)."""
    if not terms.items:
        raise DesignError("nothing to estimate: no term has an answer")
    observations = []
    for ballot in ballots:
        if ballot.ballot_id not in design:
            raise DesignError(f"ballot {ballot.ballot_id} has no stratum and weight")
        stratum, weight = design[ballot.ballot_id]
        tallies = [ballot_tally(ballot, items, satisfied_levels) for items in terms.items]
        observations.append(
            Observation(stratum, weight, tuple(t.satisfied for t in tallies), tuple(t.valid for t in tallies))
        )
    return observations


def answered_any(items: Collection[str], answered: Collection[str]) -> bool:
    return any(code in answered for code in items)
