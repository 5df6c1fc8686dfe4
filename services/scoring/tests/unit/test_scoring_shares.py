"""share-satisfied: hand-computed indices for every setting, aggregation and expectations."""

from dataclasses import replace
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipas_scoring.domain.errors import OffScale, SchemeMismatch, ScoringError
from sipas_scoring.domain.scheme import Ballot, Factor, Instrument, ScaleLevel, Scheme, five_level_scale
from sipas_scoring.domain.shares import (
    Tally,
    expectation_shares,
    item_index,
    national_index,
    score_province,
    score_shares,
)

INSTRUMENT = Instrument(
    scale=five_level_scale(),
    factors=(Factor("F1", ("a", "b"), overall_item="f1"), Factor("F2", ("c",), overall_item="f2")),
    overall_item="o",
    expectation_options=("x", "y", "z"),
)
#            a     b     c     f1  f2   o
BALLOTS = [
    Ballot("1", {"a": 5, "b": 4, "c": 2, "f1": 4, "f2": 2, "o": 5}),
    Ballot("2", {"a": 3, "b": None, "c": 4, "f1": 3, "f2": 5, "o": 4}),
    Ballot("3", {"a": 4, "b": 2, "c": None, "f1": None, "f2": None, "o": 2}),
    Ballot("4", {"a": None, "b": 5, "c": 5, "f1": 5, "f2": 4, "o": None}),
    Ballot("5", {"a": 1, "b": None, "c": None, "f1": 1, "f2": None, "o": 1}),
]


def test_item_index_leaves_missing_answers_out():
    assert item_index([5, 4, 3, None, None, 1]) == 50
    assert item_index([None, None]) is None
    assert item_index([]) is None
    assert Tally(2, 3).index == Fraction(200, 3)


def test_hand_computed_indices_for_every_setting():
    # a: 5,3,4,1 -> 2/4 = 50;  b: 4,2,5 -> 2/3 = 66.67;  c: 2,4,5 -> 2/3 = 66.67
    default = score_shares(INSTRUMENT, Scheme(), BALLOTS)
    assert {k: v.value for k, v in default.items.items()} == {"a": 50, "b": Fraction(200, 3), "c": Fraction(200, 3)}
    assert {k: v.n for k, v in default.items.items()} == {"a": 4, "b": 3, "c": 3}
    # F1 = mean(50, 66.67) = 58.33 on 5 ballots; F2 = 66.67 on 3; overall = mean(58.33, 66.67) = 62.5
    assert default.factors["F1"].value == Fraction(175, 3) and default.factors["F1"].n == 5
    assert default.factors["F2"].value == Fraction(200, 3) and default.factors["F2"].n == 3
    assert default.overall.value == Fraction(125, 2) and default.overall.n == 5
    assert Scheme().rounding.present(default.overall.value) == Fraction(125, 2)

    pooled = score_shares(INSTRUMENT, Scheme(factor_index="pooled", overall_index="pooled"), BALLOTS)
    assert pooled.factors["F1"].value == Fraction(400, 7)  # 4 of 7 valid answers to a and b
    assert pooled.overall.value == 60  # 6 of 10

    overall_items = score_shares(INSTRUMENT, Scheme(factor_index="overall_item", overall_index="overall_item"), BALLOTS)
    assert overall_items.factors["F1"].value == 50 and overall_items.factors["F1"].n == 4  # f1: 4,3,5,1
    assert overall_items.factors["F2"].value == Fraction(200, 3)  # f2: 2,5,4
    assert overall_items.overall.value == 50 and overall_items.overall.n == 4  # o: 5,4,2,1


def test_mean_of_factors_uses_the_factor_setting():
    scores = score_shares(INSTRUMENT, Scheme(factor_index="pooled"), BALLOTS)
    assert scores.overall.value == (Fraction(400, 7) + Fraction(200, 3)) / 2


def test_satisfied_levels_come_from_the_scale():
    three = (ScaleLevel(1, False), ScaleLevel(2, True), ScaleLevel(3, True))
    instrument = Instrument(three, (Factor("F1", ("a",)),))
    scores = score_shares(instrument, Scheme(), [Ballot(str(v), {"a": v}) for v in (1, 2, 3, 3)])
    assert scores.items["a"].value == 75


def test_an_item_nobody_answered_drops_out_of_the_mean():
    scores = score_shares(INSTRUMENT, Scheme(), [Ballot("1", {"a": 5, "b": None})])
    assert scores.factors["F1"].value == 100
    assert scores.factors["F2"].value is None and scores.factors["F2"].n == 0
    assert scores.overall.value == 100


def test_refusals():
    with pytest.raises(OffScale):
        score_shares(INSTRUMENT, Scheme(), [Ballot("1", {"a": 6})])
    bare = Instrument(five_level_scale(), (Factor("F1", ("a",)),))
    with pytest.raises(SchemeMismatch):
        score_shares(bare, Scheme(factor_index="overall_item"), [])
    with pytest.raises(SchemeMismatch):
        score_shares(bare, Scheme(overall_index="overall_item"), [])
    with pytest.raises(SchemeMismatch):
        Instrument(five_level_scale(), (Factor("F1", ("a",)), Factor("F2", ("a",))))


def test_province_pools_its_agencies_ballots():
    instrument = Instrument(five_level_scale(), (Factor("F1", ("a",)),))
    agencies = {
        "A": [Ballot("1", {"a": 5})],
        "B": [Ballot("2", {"a": 5}), Ballot("3", {"a": 1}), Ballot("4", {"a": 2})],
    }
    province = score_province(instrument, Scheme(), agencies)
    assert province.overall.value == 50  # 2 of 4, not mean(100, 33.33) = 66.67
    assert province.ballots == 4


def test_national_index_mean_or_population_weighted():
    provinces = {"01": Fraction(80), "79": Fraction(60), "02": None}
    assert national_index(provinces) == 70
    assert national_index(provinces, "population_weighted", {"01": 1000, "79": 3000}) == 65
    assert national_index({}) is None
    with pytest.raises(ScoringError):
        national_index(provinces, "population_weighted")
    with pytest.raises(ScoringError):
        national_index(provinces, "population_weighted", {"01": 1000})


def test_expectation_shares_may_sum_past_100():
    ballots = [
        Ballot("1", {}, frozenset({"x", "y"})),
        Ballot("2", {}, frozenset({"x"})),
        Ballot("3", {}),
        Ballot("4", {}, frozenset({"y", "z"})),
    ]
    shares = expectation_shares(ballots, INSTRUMENT.expectation_options)
    assert {k: v.value for k, v in shares.items()} == {"x": Fraction(200, 3), "y": Fraction(200, 3), "z": Fraction(100, 3)}
    assert all(v.n == 3 for v in shares.values())
    assert sum(v.value for v in shares.values() if v.value is not None) > 100
    assert expectation_shares([], ("x",))["x"].value is None
    with pytest.raises(ScoringError):
        expectation_shares([Ballot("1", {}, frozenset({"w"}))], ("x",))


answer = st.one_of(st.none(), st.integers(min_value=1, max_value=5))
rows = st.lists(st.fixed_dictionaries({"a": answer, "b": answer, "c": answer, "f1": answer, "f2": answer, "o": answer}))
schemes = st.builds(
    Scheme,
    factor_index=st.sampled_from(["mean_items", "pooled", "overall_item"]),
    overall_index=st.sampled_from(["mean_factors", "pooled", "overall_item"]),
)


@given(rows, schemes)
def test_every_share_lies_between_0_and_100(answers, scheme):
    scores = score_shares(INSTRUMENT, scheme, [Ballot(str(i), a) for i, a in enumerate(answers)])
    figures = [*scores.items.values(), *scores.factors.values(), scores.overall]
    for figure in figures:
        assert (figure.value is None) == (figure.n == 0)
        if figure.value is not None:
            assert 0 <= figure.value <= 100
            assert 1 <= figure.n <= len(answers)


@given(rows)
def test_all_satisfied_scores_100(answers):
    lifted = [{k: (None if v is None else max(v, 4)) for k, v in a.items()} for a in answers]
    scores = score_shares(INSTRUMENT, replace(Scheme(), overall_index="pooled"), [Ballot(str(i), a) for i, a in enumerate(lifted)])
    assert scores.overall.value in (None, 100)
