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

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from sipas_scoring.domain.errors import SchemeMismatch
from sipas_scoring.domain.points import FactorPoints, PointsScores, PointsTally
from sipas_scoring.domain.scheme import Ballot, Instrument, Scheme
from sipas_scoring.domain.shares import EXACT_FLOAT, HUNDRED, ShareIndex, ShareScores, Tally, mean, share_index
from sipas_scoring.domain.survey_arrays import ratio_sums

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


def _parsed(key: str) -> tuple[str, int] | tuple[()]:
    """:func:`_answer_of`, kept in :data:`_ANSWER_KEYS`."""
    found = _ANSWER_KEYS.get(key)
    if found is None:
        found = _answer_of(key)
        if len(_ANSWER_KEYS) < _KEYS_KEPT:  # bounded: keys are few (items x values), but never trusted to be
            _ANSWER_KEYS[key] = found
    return found


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
                found = _parsed(key)
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

    def answers(self, item: str) -> dict[int, int]:
        """Valid answers to ``item`` by value."""
        return dict(self._by_item.get(item, {}))

    def unanswered(self, item: str) -> int:
        return self[item_key(item, None)]


@dataclass(frozen=True)
class SharePlan:
    """Where a unit's share figures find their items, as places in :attr:`items` — the criteria first, then
    the factors' and the instrument's overall items — made once per instrument."""

    items: tuple[str, ...]
    factors: tuple[tuple[str, str, tuple[int, ...], int | None], ...]
    """Per factor: its code, its count's key, its items' places, its overall item's place (or None)."""
    criteria: tuple[int, ...]
    overall: int | None

    @staticmethod
    def of(instrument: Instrument) -> SharePlan:
        found = _PLANS.get(instrument)
        if found is None:
            items = list(instrument.criteria)
            for code in [f.overall_item for f in instrument.factors] + [instrument.overall_item]:
                if code is not None and code not in items:
                    items.append(code)
            place = {code: k for k, code in enumerate(items)}
            found = _PLANS[instrument] = SharePlan(
                tuple(items),
                tuple((f.code, f"factor:{f.code}", tuple(place[c] for c in f.items),
                       None if f.overall_item is None else place[f.overall_item]) for f in instrument.factors),
                tuple(place[c] for c in instrument.criteria),
                None if instrument.overall_item is None else place[instrument.overall_item])
        return found


_PLANS: dict[Instrument, SharePlan] = {}


def share_values(instrument: Instrument, scheme: Scheme, hits: Sequence[int], valid: Sequence[int],
                 count: Callable[[str], int]) -> tuple[dict[str, ShareIndex], ShareIndex]:
    """A unit's factor and overall indices by ``scheme``, from its items' satisfied (``hits``) and valid answers
    in the places of :class:`SharePlan` and its other counts (``count(key)``)."""
    plan = SharePlan.of(instrument)
    factors: dict[str, ShareIndex] = {}
    for code, key, places, overall_at in plan.factors:
        if scheme.factor_index == "mean_items":
            factors[code] = ShareIndex(_mean_share(hits, valid, places), count(key))
        elif scheme.factor_index == "pooled":
            factors[code] = ShareIndex(share_index(sum(hits[k] for k in places), sum(valid[k] for k in places)),
                                       count(key))
        else:
            if overall_at is None:
                raise SchemeMismatch(f"factor {code} has no overall item")
            factors[code] = ShareIndex(share_index(hits[overall_at], valid[overall_at]), valid[overall_at])
    if scheme.overall_index == "mean_factors":
        n = count("factor-overall" if scheme.factor_index == "overall_item" else "criteria")
        overall = ShareIndex(mean([f.value for f in factors.values()]), n)
    elif scheme.overall_index == "pooled":
        overall = ShareIndex(share_index(sum(hits[k] for k in plan.criteria), sum(valid[k] for k in plan.criteria)),
                             count("criteria"))
    else:
        if plan.overall is None:
            raise SchemeMismatch("the instrument has no overall item")
        overall = ShareIndex(share_index(hits[plan.overall], valid[plan.overall]), valid[plan.overall])
    return factors, overall


def _mean_share(hits: Sequence[int], valid: Sequence[int], places: Sequence[int]) -> Fraction | None:
    """:func:`mean` of the items' shares (those with a valid answer), from their counts: Σ 100·h/v over m items
    is 100·Σ h·(L/v) / (L·m) with L the valid counts' lcm — the same fraction, without one per item."""
    answered = [k for k in places if valid[k]]
    if not answered:
        return None
    common = math.lcm(*(valid[k] for k in answered))
    return Fraction(HUNDRED * sum(hits[k] * (common // valid[k]) for k in answered), common * len(answered))


Ratios = tuple[NDArray[np.int64], NDArray[np.int64]]
"""Per unit, a figure as a reduced ratio: (numerators, denominators), denominator 0 where there is none."""


@dataclass(frozen=True)
class ShareRatios:
    """:func:`share_values` of many units at once (:func:`share_values_many`): per factor (in the instrument's
    order) and for the overall index, every unit's value as a reduced ratio; ``held[u]`` is False where int64
    could not hold unit ``u``'s numbers (its ratios are then meaningless: compute it with :func:`share_values`)."""

    factors: tuple[Ratios, ...]
    overall: Ratios
    held: NDArray[np.bool_]


def _mean_ratios(numerators: NDArray[np.int64], denominators: NDArray[np.int64], scale: int
                 ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
    """Per row, ``scale`` times the mean of n_k/d_k over the k with d_k > 0, reduced — :func:`_mean_share` and
    :func:`~sipas_scoring.domain.shares.mean` in int64, every row at once (:func:`ratio_sums` with the
    coefficients scale/m, m the row's terms with d_k > 0); 0/0 where there is none, and, as there, a row is
    not held where int64 could not hold its numbers."""
    present = denominators > 0
    m = present.sum(axis=1)
    a = np.where(present, scale, 0).astype(np.int64)
    b = np.broadcast_to(np.maximum(m, 1)[:, None], numerators.shape).astype(np.int64)
    found_n, found_d, held = ratio_sums(a, b, numerators, np.where(present, denominators, 1))
    none = m == 0
    return np.where(none, 0, found_n), np.where(none, 0, found_d), held


def share_values_many(instrument: Instrument, scheme: Scheme, hits: NDArray[np.int64], valid: NDArray[np.int64]
                      ) -> ShareRatios | None:
    """The factor and overall indices of :func:`share_values` for many units at once (``hits``, ``valid``:
    units by the items of :class:`SharePlan`), as reduced integer ratios, for a scheme that averages — each
    factor the mean of its items' shares, the overall index the mean of the factors' — the same fractions
    :func:`share_values` makes one unit at a time; None for any other scheme."""
    if scheme.factor_index != "mean_items" or scheme.overall_index != "mean_factors":
        return None
    plan = SharePlan.of(instrument)
    factors = []
    held = np.ones(len(hits), dtype=bool)
    for _code, _key, places, _overall_at in plan.factors:
        at = list(places)
        numerators, denominators, fits = _mean_ratios(hits[:, at], valid[:, at], HUNDRED)
        factors.append((numerators, denominators))
        held &= fits
    if factors:
        numerators, denominators, fits = _mean_ratios(np.stack([f[0] for f in factors], axis=1),
                                                      np.stack([f[1] for f in factors], axis=1), 1)
    else:
        numerators = denominators = np.zeros(len(hits), dtype=np.int64)
        fits = np.ones(len(hits), dtype=bool)
    return ShareRatios(tuple(factors), (numerators, denominators), held & fits)


def share_scores(instrument: Instrument, scheme: Scheme, tallies: Tallies) -> ShareScores:
    """:func:`shares.score_shares` from tallies: the same figures, the same ``n``."""
    plan = SharePlan.of(instrument)
    answered = tallies.items(instrument.satisfied_levels)
    found = [answered.get(code, NO_ANSWER) for code in plan.items]
    hits, valid = [t.satisfied for t in found], [t.valid for t in found]
    items = {code: ShareIndex(share_index(hits[k], valid[k]), valid[k]) for k, code in enumerate(instrument.criteria)}
    factors, overall = share_values(instrument, scheme, hits, valid, tallies.__getitem__)
    return ShareScores(items=items, factors=factors, overall=overall, ballots=tallies.ballots)


class TallyMatrix:
    """Many units' tallies at once, for figures that ask the same of every unit: each item's satisfied and
    valid answers (``hits``, ``valid``: units by the items given, what :meth:`Tallies.items` gives one unit)
    in two integer products, and any key's counts (:meth:`count`), where reading each unit's keys one by one
    in Python was most of the cost."""

    def __init__(self, bags: Sequence[Mapping[str, int]], items: Sequence[str], satisfied: frozenset[int]) -> None:
        columns: dict[str, int] = {}
        places: list[int] = []
        values: list[int] = []
        lengths: list[int] = []
        for bag in bags:
            if not columns.keys() >= bag.keys():
                for key in bag:
                    columns.setdefault(key, len(columns))
            places.extend(map(columns.__getitem__, bag))
            values.extend(bag.values())
            lengths.append(len(bag))
        counts = np.zeros((len(bags), len(columns)), dtype=np.int64)
        counts[np.repeat(np.arange(len(bags)), lengths), places] = values
        place = {code: k for k, code in enumerate(items)}
        hit = np.zeros((len(columns), len(items)), dtype=np.int64)
        answer = np.zeros_like(hit)
        for key, k in columns.items():
            found = _parsed(key)
            if found and found[0] in place:
                answer[k, place[found[0]]] = 1
                hit[k, place[found[0]]] = found[1] in satisfied
        self.columns, self.counts = columns, counts
        if len(columns) and int(np.abs(counts).max()) * len(columns) < EXACT_FLOAT:  # exact in floats: BLAS
            as_floats = counts.astype(np.float64)
            self.hits = (as_floats @ hit.astype(np.float64)).astype(np.int64)
            self.valid = (as_floats @ answer.astype(np.float64)).astype(np.int64)
        else:
            self.hits, self.valid = counts @ hit, counts @ answer

    def count(self, key: str) -> NDArray[np.int64]:
        """Each unit's count of ``key``."""
        k = self.columns.get(key)
        return np.zeros(len(self.counts), dtype=np.int64) if k is None else self.counts[:, k]


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
