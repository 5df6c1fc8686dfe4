"""The ``points`` scheme (department and commune PAR scoring), exact until presentation.

Each answer earns its level's points (default: the level's value, 1-5). An item on a ballot (a key of
its answers) is worth the scale's top points; unanswered (``None``) it earns 0 of them, or with the
``answered_only`` setting it leaves the maximum too. A unit's rate is points achieved ÷ maximum.

Factor points = factor rate * the factor's maximum (default 6, so 30 for five factors). A factor no
ballot answered is not scored: it earns nothing and keeps its maximum in the total, so a commune
without feedback answers is shown as 5.09 + 5.08 + 5.26 + 5.13 = 20.56 / 30.

How the total is formed: the report prints each factor's points (truncated) and a total that is their
sum. :func:`presented_total` therefore adds the *presented* factor points. Presenting the exact sum
instead agrees only sometimes: with par-16 parts that print 5.09, 5.08, 5.26 and 5.13, one unit's
exact sum is 20.5667 (prints 20.56) and another's 20.5806 (prints 20.58). Adding the printed parts
gives the report's 20.56 for every such unit, and a reader who adds the printed parts gets the
printed total, so that is what the platform publishes; :attr:`PointsScores.exact_total` stays
available for analysis.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from sipas_scoring.domain.rounding import Rounding
from sipas_scoring.domain.scheme import Ballot, Instrument, Scheme, check_on_scale

HUNDRED = 100


@dataclass(frozen=True)
class PointsTally:
    """Points achieved out of the maximum, and how many answers were valid."""

    achieved: int = 0
    maximum: int = 0
    answered: int = 0

    def __add__(self, other: PointsTally) -> PointsTally:
        return PointsTally(
            self.achieved + other.achieved, self.maximum + other.maximum, self.answered + other.answered
        )

    @property
    def rate(self) -> Fraction | None:
        """Achieved ÷ maximum on 0-1; ``None`` when there is no maximum to divide by."""
        return Fraction(self.achieved, self.maximum) if self.maximum else None

    @property
    def percent(self) -> Fraction | None:
        rate = self.rate
        return None if rate is None else rate * HUNDRED


@dataclass(frozen=True)
class FactorPoints:
    factor: str
    tally: PointsTally
    max_points: Fraction
    points: Fraction | None
    """Rate * ``max_points``; ``None`` when the factor had no applicable answer (not scored)."""

    @property
    def scored(self) -> bool:
        return self.points is not None


@dataclass(frozen=True)
class PointsScores:
    tally: PointsTally
    factors: tuple[FactorPoints, ...]
    ballots: int

    @property
    def total_max_points(self) -> Fraction:
        """Every factor's maximum, scored or not."""
        return sum((f.max_points for f in self.factors), Fraction(0))

    @property
    def exact_total(self) -> Fraction:
        return sum((f.points for f in self.factors if f.points is not None), Fraction(0))


def ballot_points(instrument: Instrument, scheme: Scheme, ballot: Ballot, items: Iterable[str]) -> PointsTally:
    """One ballot's points over ``items`` (those the ballot carries)."""
    top = max(scheme.points_for(level) for level in instrument.scale)
    total = PointsTally()
    for item in items:
        if item not in ballot.answers:
            continue
        value = ballot.answers[item]
        if value is None:
            total += PointsTally(0, top if scheme.unanswered == "zero" else 0, 0)
        else:
            total += PointsTally(scheme.points_for(instrument.level(value)), top, 1)
    return total


def score_points(instrument: Instrument, scheme: Scheme, ballots: Sequence[Ballot]) -> PointsScores:
    """A unit's rate and factor points from its ballots, by the ``points`` scheme."""
    check_on_scale(instrument, ballots)
    factors = []
    overall = PointsTally()
    for factor in instrument.factors:
        tally = sum((ballot_points(instrument, scheme, b, factor.items) for b in ballots), PointsTally())
        overall += tally
        rate = tally.rate if tally.answered else None
        points = None if rate is None else rate * scheme.factor_max_points
        factors.append(FactorPoints(factor.code, tally, scheme.factor_max_points, points))
    return PointsScores(tally=overall, factors=tuple(factors), ballots=len(ballots))


def presented_factor_points(scores: PointsScores, rounding: Rounding) -> dict[str, Decimal | None]:
    return {f.factor: None if f.points is None else rounding.present(f.points) for f in scores.factors}


def presented_total(scores: PointsScores, rounding: Rounding) -> Decimal:
    """Sum of the presented factor points (see the module docstring for why not the presented sum)."""
    parts = presented_factor_points(scores, rounding).values()
    return sum((p for p in parts if p is not None), Decimal(0)).quantize(Decimal(1).scaleb(-rounding.places))


def presented_rate(tally: PointsTally, rounding: Rounding) -> Decimal | None:
    """The rate as a percentage by the scheme's rule: 1771/2000 → 88.55, 786/960 → 81.87 (truncate)."""
    percent = tally.percent
    return None if percent is None else rounding.present(percent)
