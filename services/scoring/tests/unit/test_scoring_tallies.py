"""Tallies: the additive state scoring keeps, and the figures derived from it equal those from ballots."""

from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipas_scoring.domain.errors import OffScale
from sipas_scoring.domain.points import score_points
from sipas_scoring.domain.scheme import Ballot, Factor, Instrument, Scheme, five_level_scale, points_scheme
from sipas_scoring.domain.shares import expectation_shares as expectation_shares_of_ballots
from sipas_scoring.domain.shares import score_shares
from sipas_scoring.domain.tallies import (
    NO_ANSWER,
    SharePlan,
    Tallies,
    TallyMatrix,
    ballot_tallies,
    expectation_shares,
    points_scores,
    share_scores,
    share_values,
    share_values_many,
    sum_tallies,
)

INSTRUMENT = Instrument(
    scale=five_level_scale(),
    factors=(Factor("F1", ("a", "b"), overall_item="o1"), Factor("F2", ("c",), overall_item="o2"),
             Factor("F3", ("d", "e", "f"), overall_item="o3")),
    overall_item="o",
    expectation_options=("E1", "E2", "E3"),
)
ITEMS = ("a", "b", "c", "d", "e", "f", "o1", "o2", "o3", "o")

answer = st.one_of(st.none(), st.integers(1, 5))
ballot = st.builds(
    lambda ident, answers, expectations: Ballot(str(ident), answers, frozenset(expectations)),
    st.uuids(),
    st.dictionaries(st.sampled_from(ITEMS), answer, max_size=len(ITEMS)),
    st.sets(st.sampled_from(INSTRUMENT.expectation_options)),
)
scheme = st.builds(
    Scheme,
    factor_index=st.sampled_from(["mean_items", "pooled", "overall_item"]),
    overall_index=st.sampled_from(["mean_factors", "pooled", "overall_item"]),
)


def tallies_of(ballots):
    return Tallies(sum_tallies(ballot_tallies(INSTRUMENT, b) for b in ballots))


@settings(max_examples=200, deadline=None)
@given(st.lists(ballot, max_size=25), scheme)
def test_share_figures_from_tallies_equal_figures_from_ballots(ballots, chosen):
    assert share_scores(INSTRUMENT, chosen, tallies_of(ballots)) == score_shares(INSTRUMENT, chosen, ballots)


@settings(max_examples=200, deadline=None)
@given(st.lists(ballot, max_size=25), st.sampled_from(["zero", "answered_only"]))
def test_points_from_tallies_equal_points_from_ballots(ballots, unanswered):
    chosen = points_scheme(unanswered)
    assert points_scores(INSTRUMENT, chosen, tallies_of(ballots)) == score_points(INSTRUMENT, chosen, ballots)


@settings(max_examples=100, deadline=None)
@given(st.lists(ballot, max_size=25))
def test_expectation_shares_from_tallies_equal_those_from_ballots(ballots):
    options = INSTRUMENT.expectation_options
    assert expectation_shares(tallies_of(ballots), options) == expectation_shares_of_ballots(ballots, options)


@given(st.lists(ballot, max_size=15), st.data())
def test_voiding_takes_away_exactly_what_accepting_added(ballots, data):
    voided = data.draw(st.sets(st.sampled_from(range(len(ballots)))) if ballots else st.just(set()))
    running: Counter[str] = Counter()
    for b in ballots:
        running.update(ballot_tallies(INSTRUMENT, b))
    for i in voided:
        running.subtract(ballot_tallies(INSTRUMENT, ballots[i]))
    kept = [b for i, b in enumerate(ballots) if i not in voided]
    assert +running == tallies_of(kept).counts


def test_a_ballot_adds_its_answers_and_the_factors_it_touched():
    bag = ballot_tallies(INSTRUMENT, Ballot("x", {"a": 5, "b": None, "o2": 3}, frozenset({"E2"})))
    assert bag == Counter({"ballots": 1, "item:a:5": 1, "item:b:na": 1, "item:o2:3": 1, "factor:F1": 1,
                           "criteria": 1, "factor-overall": 1, "expect": 1, "expect:E2": 1})


def test_an_answer_off_the_scale_is_refused():
    with pytest.raises(OffScale):
        ballot_tallies(INSTRUMENT, Ballot("x", {"a": 7}))


def test_provinces_pool_their_agencies_tallies():
    first = [Ballot("1", {"a": 5, "b": 4}), Ballot("2", {"a": 1, "b": 2})]
    second = [Ballot("3", {"a": 4, "c": 3})]
    pooled = Tallies(sum_tallies([tallies_of(first).counts, tallies_of(second).counts]))
    assert share_scores(INSTRUMENT, Scheme(), pooled) == score_shares(INSTRUMENT, Scheme(), first + second)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(ballot, max_size=12), min_size=1, max_size=6))
def test_a_matrix_of_units_tallies_counts_what_each_units_tallies_count(units):
    """The figures count every changed unit's items at once (:class:`TallyMatrix`): each unit's satisfied and
    valid answers per item, and any key's count, must be what its own tallies give."""
    bags = [tallies_of(ballots).counts for ballots in units]
    plan = SharePlan.of(INSTRUMENT)
    matrix = TallyMatrix(bags, plan.items, INSTRUMENT.satisfied_levels)
    for u, bag in enumerate(bags):
        answered = Tallies(bag).items(INSTRUMENT.satisfied_levels)
        assert matrix.hits[u].tolist() == [answered.get(c, NO_ANSWER).satisfied for c in plan.items]
        assert matrix.valid[u].tolist() == [answered.get(c, NO_ANSWER).valid for c in plan.items]
        for key in ("ballots", "criteria", "factor-overall", "factor:F3", "expect", "expect:E2", "item:a:na"):
            assert int(matrix.count(key)[u]) == bag.get(key, 0)


def test_a_matrix_of_no_units_and_of_units_without_answers():
    assert TallyMatrix([], SharePlan.of(INSTRUMENT).items, frozenset({4, 5})).hits.shape == (0, len(ITEMS))
    matrix = TallyMatrix([Counter(ballots=2), Counter()], SharePlan.of(INSTRUMENT).items, frozenset({4, 5}))
    assert matrix.valid.tolist() == [[0] * len(ITEMS)] * 2 and matrix.count("ballots").tolist() == [2, 0]


def _counts(small: bool):
    """A count: mostly small, sometimes past what int64 can hold once several are multiplied together."""
    return st.integers(0, 40) if small else st.one_of(st.integers(0, 40), st.integers(2**20, 2**40))


@settings(max_examples=300, deadline=None)
@given(st.data(), st.integers(0, 6), st.booleans())
def test_share_values_made_together_are_the_ones_made_unit_by_unit(data, units, small):
    """The figures make every changed unit's factor and overall indices at once (:func:`share_values_many`):
    each unit it holds gets the very fraction :func:`share_values` makes for it alone — reduced, None where
    none — and a unit whose numbers int64 could not hold is left to :func:`share_values`."""
    width = len(SharePlan.of(INSTRUMENT).items)
    valid = np.array(data.draw(st.lists(st.lists(_counts(small), min_size=width, max_size=width),
                                        min_size=units, max_size=units)), dtype=np.int64).reshape(units, width)
    hits = np.array([[data.draw(st.integers(0, int(v))) for v in row] for row in valid.tolist()],
                    dtype=np.int64).reshape(units, width)
    found = share_values_many(INSTRUMENT, Scheme(), hits, valid)
    assert found is not None

    def fraction(ratios, u):
        numerator, denominator = int(ratios[0][u]), int(ratios[1][u])
        return None if denominator == 0 else (numerator, denominator)

    for u in range(units):
        factors, overall = share_values(INSTRUMENT, Scheme(), hits[u].tolist(), valid[u].tolist(), lambda key: 0)
        if small:
            assert found.held[u]  # small counts always fit
        if not found.held[u]:
            continue
        want = [factors[f.code].value for f in INSTRUMENT.factors] + [overall.value]
        got = [fraction(ratios, u) for ratios in (*found.factors, found.overall)]
        assert got == [None if w is None else (w.numerator, w.denominator) for w in want]
        assert all(g is None or Fraction(*g).denominator == g[1] for g in got)  # reduced


def test_share_values_made_together_only_for_schemes_that_average():
    hits = valid = np.zeros((1, len(SharePlan.of(INSTRUMENT).items)), dtype=np.int64)
    assert share_values_many(INSTRUMENT, Scheme(factor_index="pooled"), hits, valid) is None
    assert share_values_many(INSTRUMENT, Scheme(overall_index="overall_item"), hits, valid) is None
    found = share_values_many(INSTRUMENT, Scheme(), hits, valid)
    assert found is not None and found.held.tolist() == [True]
    assert [int(r[1][0]) for r in (*found.factors, found.overall)] == [0, 0, 0, 0]  # nobody answered: no figure
