"""Tallies: the additive counts every share and points figure is derived from.

A ballot contributes a fixed bag of counts (:func:`ballot_tallies`); accepting it adds the bag,
voiding it subtracts the same bag. Because every count is a sum over ballots, a unit's tallies are
the sum of its ballots' bags, a province's the sum of its agencies' tallies, and a restated unit the
sum of its predecessors'. :func:`share_scores` and :func:`points_scores` compute from tallies alone
exactly what :func:`shares.score_shares` and :func:`points.score_points` compute from the ballots.

Keys (text, so they store as rows):
- ``ballots``: ballots counted;
- ``item:<code>:<value>``: answers of ``value`` to the item; ``item:<code>:na`` carried unanswered;
- ``factor:<code>``: ballots with a valid answer to at least one of the factor's criteria;
- ``criteria``: ballots with a valid answer to at least one criterion;
- ``factor-overall``: ballots with a valid answer to at least one factor's overall item;
- ``expect`` / ``expect:<option>``: ballots that chose any improvement priority / that option.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

from sipas_scoring.domain.errors import SchemeMismatch
from sipas_scoring.domain.points import FactorPoints, PointsScores, PointsTally
from sipas_scoring.domain.scheme import Ballot, Instrument, Scheme
from sipas_scoring.domain.shares import HUNDRED, ShareIndex, ShareScores, Tally, mean

NA = "na"


def item_key(item: str, value: int | None) -> str:
    return f"item:{item}:{NA if value is None else value}"


def ballot_tallies(instrument: Instrument, ballot: Ballot) -> Counter[str]:
    """The counts one accepted ballot adds (and its voiding takes away)."""
    bag: Counter[str] = Counter(ballots=1)
    for item, value in ballot.answers.items():
        if value is not None:
            instrument.level(value)  # an answer off the scale is a bug upstream: refuse it here too
        bag[item_key(item, value)] += 1
    answered = {item for item, value in ballot.answers.items() if value is not None}
    for factor in instrument.factors:
        if answered.intersection(factor.items):
            bag[f"factor:{factor.code}"] += 1
    if answered.intersection(instrument.criteria):
        bag["criteria"] += 1
    if answered.intersection(f.overall_item for f in instrument.factors if f.overall_item):
        bag["factor-overall"] += 1
    if ballot.expectations:
        bag["expect"] += 1
        for option in ballot.expectations:
            bag[f"expect:{option}"] += 1
    return bag


def sum_tallies(bags: Iterable[Mapping[str, int]]) -> Counter[str]:
    total: Counter[str] = Counter()
    for bag in bags:
        total.update(bag)
    return +total  # drop keys that went to zero, so equal states compare equal


NO_ANSWER = Tally()
_TALLIES: dict[tuple[int, int], Tally] = {}
"""Tallies by their counts, made once per process (they are immutable, and the same small counts recur in
every unit); emptied when ``_TALLIES_KEPT`` are held."""
_TALLIES_KEPT = 100_000


def _tally(satisfied: int, valid: int) -> Tally:
    key = (satisfied, valid)
    found = _TALLIES.get(key)
    if found is None:
        if len(_TALLIES) >= _TALLIES_KEPT:
            _TALLIES.clear()
        found = _TALLIES[key] = Tally(satisfied, valid)
    return found


_ANSWER_KEYS: dict[str, tuple[str, int] | tuple[()]] = {}
"""Each key met, parsed once per process: (item, value) of a valid answer's key, () for any other key."""
_KEYS_KEPT = 100_000


def _answer_of(key: str) -> tuple[str, int] | tuple[()]:
    if not key.startswith("item:"):
        return ()
    item, _, value = key[5:].rpartition(":")
    return () if value == NA else (item, int(value))


@dataclass(frozen=True)
class Tallies:
    """Read access to a bag of counts in the instrument's terms."""

    counts: Mapping[str, int]

    def __getitem__(self, key: str) -> int:
        return self.counts.get(key, 0)

    @property
    def ballots(self) -> int:
        return self["ballots"]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_items", {})

    def _answers(self) -> Iterable[tuple[str, int, int]]:
        """(item, value, count) of every valid answer's key with a count."""
        parsed = _ANSWER_KEYS
        for key, count in self.counts.items():
            found = parsed.get(key)
            if found is None:
                found = _answer_of(key)
                if len(parsed) < _KEYS_KEPT:  # bounded: keys are few (items x values), but never trusted to be
                    parsed[key] = found
            if found and count:
                yield found[0], found[1], count

    @cached_property
    def _by_item(self) -> dict[str, dict[int, int]]:
        by_item: dict[str, dict[int, int]] = {}
        for item, value, count in self._answers():
            by_item.setdefault(item, {})[value] = count
        return by_item

    def items(self, satisfied: frozenset[int]) -> dict[str, Tally]:
        """Every answered item's ``share((item,), satisfied)``, kept: a unit's figures ask for every item's
        tally, some several times, so the first question makes them all, in one pass over the counts (tallies
        interned by their counts). The dict
        is the one kept: read it, never change it."""
        kept: dict[frozenset[int], dict[str, Tally]] = self._items  # type: ignore[attr-defined]
        every = kept.get(satisfied)
        if every is None:
            hits: dict[str, int] = {}
            valid: dict[str, int] = {}
            for code, value, count in self._answers():
                valid[code] = valid.get(code, 0) + count
                if value in satisfied:
                    hits[code] = hits.get(code, 0) + count
            every = kept[satisfied] = {code: _tally(hits.get(code, 0), n) for code, n in valid.items()}
        return every

    def item(self, item: str, satisfied: frozenset[int]) -> Tally:
        """``share((item,), satisfied)`` (from :meth:`items`)."""
        return self.items(satisfied).get(item, NO_ANSWER)

    def answers(self, item: str) -> dict[int, int]:
        """Valid answers to ``item`` by value."""
        return dict(self._by_item.get(item, {}))

    def share(self, items: Iterable[str], satisfied: frozenset[int]) -> Tally:
        by_item = self._by_item
        hits = valid = 0
        for item in items:
            for value, count in by_item.get(item, {}).items():
                valid += count
                if value in satisfied:
                    hits += count
        return Tally(hits, valid)

    def valid(self, item: str) -> int:
        return sum(self._by_item.get(item, {}).values())

    def unanswered(self, item: str) -> int:
        return self[item_key(item, None)]


def share_scores(instrument: Instrument, scheme: Scheme, tallies: Tallies) -> ShareScores:
    """:func:`shares.score_shares` from tallies: the same figures, the same ``n``."""
    satisfied = instrument.satisfied_levels
    answered = tallies.items(satisfied)

    def item(code: str) -> ShareIndex:
        found = answered.get(code, NO_ANSWER)  # its valid answers are the item's n
        return ShareIndex(found.index, found.valid)

    items = {code: item(code) for code in instrument.criteria}
    factors: dict[str, ShareIndex] = {}
    for factor in instrument.factors:
        n = tallies[f"factor:{factor.code}"]
        if scheme.factor_index == "mean_items":
            factors[factor.code] = ShareIndex(mean(items[code].value for code in factor.items), n)
        elif scheme.factor_index == "pooled":
            factors[factor.code] = ShareIndex(tallies.share(factor.items, satisfied).index, n)
        else:
            if factor.overall_item is None:
                raise SchemeMismatch(f"factor {factor.code} has no overall item")
            factors[factor.code] = item(factor.overall_item)

    if scheme.overall_index == "mean_factors":
        n = tallies["factor-overall" if scheme.factor_index == "overall_item" else "criteria"]
        overall = ShareIndex(mean(f.value for f in factors.values()), n)
    elif scheme.overall_index == "pooled":
        overall = ShareIndex(tallies.share(instrument.criteria, satisfied).index, tallies["criteria"])
    else:
        if instrument.overall_item is None:
            raise SchemeMismatch("the instrument has no overall item")
        overall = item(instrument.overall_item)
    return ShareScores(items=items, factors=factors, overall=overall, ballots=tallies.ballots)


def points_scores(instrument: Instrument, scheme: Scheme, tallies: Tallies) -> PointsScores:
    """:func:`points.score_points` from tallies."""
    top = max(scheme.points_for(level) for level in instrument.scale)
    factors = []
    overall = PointsTally()
    for factor in instrument.factors:
        tally = PointsTally()
        for code in factor.items:
            answers = tallies.answers(code)
            valid = sum(answers.values())
            achieved = sum(scheme.points_for(instrument.level(v)) * c for v, c in answers.items())
            unanswered_max = top * tallies.unanswered(code) if scheme.unanswered == "zero" else 0
            tally += PointsTally(achieved, top * valid + unanswered_max, valid)
        overall += tally
        rate = tally.rate if tally.answered else None
        factors.append(FactorPoints(factor.code, tally, scheme.factor_max_points,
                                    None if rate is None else rate * scheme.factor_max_points))
    return PointsScores(tally=overall, factors=tuple(factors), ballots=tallies.ballots)


def expectation_shares(tallies: Tallies, options: Iterable[str]) -> dict[str, ShareIndex]:
    """:func:`shares.expectation_shares` from tallies."""
    n = tallies["expect"]
    return {option: ShareIndex(Fraction(tallies[f"expect:{option}"] * HUNDRED, n) if n else None, n)
            for option in options}
