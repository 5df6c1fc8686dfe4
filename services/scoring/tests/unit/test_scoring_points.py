"""The points scheme against the known answers of a commune's 2023 PAR report."""

from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipas_scoring.domain.points import (
    PointsTally,
    presented_factor_points,
    presented_rate,
    presented_total,
    score_points,
)
from sipas_scoring.domain.rounding import Rounding, format_vi
from sipas_scoring.domain.scheme import Ballot, Factor, Instrument, ScaleLevel, five_level_scale, points_scheme

TRUNCATE = Rounding("truncate", 2)
# The shape of the built-in ``par-16`` instrument: 16 criteria split 3 + 3 + 4 + 3 + 3 over five factors.
PAR_16 = Instrument(
    scale=five_level_scale(),
    factors=tuple(
        Factor(f"F{f}", tuple(f"{f}.{i}" for i in range(1, size + 1)))
        for f, size in enumerate((3, 3, 4, 3, 3), start=1)
    ),
)
SIPAS_2017 = Instrument(
    scale=five_level_scale(),
    factors=tuple(
        Factor(f"F{f}", tuple(f"{f}.{i}" for i in range(1, size + 1)))
        for f, size in enumerate((4, 5, 6, 3, 4), start=1)
    ),
)

def ballots_scoring(count: int, totals: dict[tuple[str, ...], int], blank: tuple[str, ...] = ()) -> list[Ballot]:
    """``count`` ballots whose answers to each item group add up to the given points (levels 4 and 5),
    with ``blank`` items carried but unanswered."""
    answers: list[dict[str, int | None]] = [dict.fromkeys(blank) for _ in range(count)]
    for items, total in totals.items():
        cells = [(b, item) for b in range(count) for item in items]
        fives = total - 4 * len(cells)
        assert 0 <= fives <= len(cells)
        for position, (b, item) in enumerate(cells):
            answers[b][item] = 5 if position < fives else 4
    return [Ballot(f"b{i}", a) for i, a in enumerate(answers)]


@pytest.mark.parametrize(
    ("ballots", "points", "shown"),
    [(25, 1771, "88,55"), (12, 786, "81,87"), (8, 532, "83,12")],
)
def test_known_commune_rates(ballots, points, shown):
    # 16 criteria x 5 points, all answered: 25 ballots -> 2000, 12 -> 960, 8 -> 640, as in the report.
    scores = score_points(PAR_16, points_scheme(), ballots_scoring(ballots, {PAR_16.criteria: points}))
    assert (scores.tally.achieved, scores.tally.maximum, scores.ballots) == (points, ballots * 80, ballots)
    assert format_vi(presented_rate(scores.tally, TRUNCATE)) == shown


def par_16_without_feedback(ballots: int, f1: int, f2: int, f3: int, f4: int) -> list[Ballot]:
    factors = {f.code: f.items for f in PAR_16.factors}
    totals = {factors["F1"]: f1, factors["F2"]: f2, factors["F3"]: f3, factors["F4"]: f4}
    return ballots_scoring(ballots, totals, blank=factors["F5"])


REPORTED = {"F1": Decimal("5.09"), "F2": Decimal("5.08"), "F3": Decimal("5.26"), "F4": Decimal("5.13"), "F5": None}


def test_known_factor_points_and_total_with_an_unscored_factor():
    # 30 ballots of par-16, nobody answered factor 5 (its items carried, unanswered):
    #   F1 382/450 * 6 = 5.0933 -> 5.09      F2 381/450 * 6 = 5.08
    #   F3 526/600 * 6 = 5.26                F4 385/450 * 6 = 5.1333 -> 5.13
    # exact sum 20.5667; the report prints 5.09 + 5.08 + 5.26 + 5.13 = 20.56 / 30.
    scores = score_points(PAR_16, points_scheme(), par_16_without_feedback(30, 382, 381, 526, 385))
    assert presented_factor_points(scores, TRUNCATE) == REPORTED
    f5 = scores.factors[4]
    assert not f5.scored and f5.max_points == 6 and f5.tally.maximum == 30 * 3 * 5
    assert scores.total_max_points == 30
    assert scores.exact_total == Fraction(6 * 382, 450) + Fraction(6 * 381, 450) + Fraction(6 * 526, 600) + Fraction(6 * 385, 450)
    assert presented_total(scores, TRUNCATE) == Decimal("20.56")
    # F5's items were on the ballots unanswered: each earns 0 of its 5 in the unit's rate.
    assert (scores.tally.achieved, scores.tally.maximum) == (1674, 30 * 16 * 5)


def test_the_total_adds_the_presented_factor_points():
    # 31 ballots: F1 395/465 * 6 = 5.0968, F2 394/465 * 6 = 5.0839, F3 544/620 * 6 = 5.2645,
    # F4 398/465 * 6 = 5.1355. Printed parts are again 5.09, 5.08, 5.26, 5.13, but their exact sum
    # 20.5806 would print as 20.58: only adding the printed parts gives the report's 20.56.
    scores = score_points(PAR_16, points_scheme(), par_16_without_feedback(31, 395, 394, 544, 398))
    assert presented_factor_points(scores, TRUNCATE) == REPORTED
    assert TRUNCATE.present(scores.exact_total) == Decimal("20.58")
    assert presented_total(scores, TRUNCATE) == Decimal("20.56")


def test_factor_not_carried_by_the_ballots_is_unscored_and_out_of_the_rate():
    factors = {f.code: f.items for f in SIPAS_2017.factors}
    ballots = ballots_scoring(30, {factors["F1"]: 509, factors["F2"]: 636, factors["F3"]: 790, factors["F4"]: 385})
    scores = score_points(SIPAS_2017, points_scheme(), ballots)
    assert presented_factor_points(scores, TRUNCATE) == REPORTED
    assert presented_total(scores, TRUNCATE) == Decimal("20.56")
    assert TRUNCATE.present(scores.exact_total) == Decimal("20.57")  # exact 20.578
    assert (scores.tally.achieved, scores.tally.maximum) == (2320, 30 * 18 * 5)


def test_unanswered_earns_zero_or_leaves_the_maximum():
    instrument = Instrument(five_level_scale(), (Factor("F1", ("a", "b")), Factor("F2", ("c",))))
    ballots = [Ballot("1", {"a": 5, "b": None, "c": 3}), Ballot("2", {"a": 4, "b": 2, "c": None})]
    zero = score_points(instrument, points_scheme(), ballots)
    # a: 5 + 4, b: 0 + 2 of 4 items x 5 -> F1 11/20; c: 3 of 2 x 5 -> F2 3/10
    assert [(f.tally.achieved, f.tally.maximum) for f in zero.factors] == [(11, 20), (3, 10)]
    assert zero.factors[0].points == Fraction(11, 20) * 6
    assert zero.tally.rate == Fraction(14, 30)
    answered = score_points(instrument, points_scheme("answered_only"), ballots)
    assert [(f.tally.achieved, f.tally.maximum) for f in answered.factors] == [(11, 15), (3, 5)]
    assert answered.factors[1].points == Fraction(18, 5)
    assert answered.tally.rate == Fraction(14, 20)


def test_points_come_from_the_scheme_or_the_scale():
    three = (ScaleLevel(1, False, points=0), ScaleLevel(2, True, points=1), ScaleLevel(3, True, points=2))
    instrument = Instrument(three, (Factor("F1", ("a",)),))
    scores = score_points(instrument, points_scheme(), [Ballot("1", {"a": 3}), Ballot("2", {"a": 1})])
    assert (scores.tally.achieved, scores.tally.maximum) == (2, 4)
    remapped = replace(points_scheme(), points={1: 1, 2: 3, 3: 5})
    scores = score_points(instrument, remapped, [Ballot("1", {"a": 3}), Ballot("2", {"a": 1})])
    assert (scores.tally.achieved, scores.tally.maximum) == (6, 10)


def test_factor_maximum_is_a_setting():
    instrument = Instrument(five_level_scale(), (Factor("F1", ("a",)), Factor("F2", ("b",))))
    scheme = replace(points_scheme(), factor_max_points=Fraction(10))
    scores = score_points(instrument, scheme, [Ballot("1", {"a": 4, "b": None})])
    assert scores.factors[0].points == 8
    assert scores.total_max_points == 20
    assert presented_total(scores, TRUNCATE) == Decimal("8.00")


def test_no_ballots_no_rate():
    scores = score_points(PAR_16, points_scheme(), [])
    assert scores.tally.rate is None and presented_rate(scores.tally, TRUNCATE) is None
    assert presented_total(scores, TRUNCATE) == Decimal("0.00")
    assert scores.total_max_points == 30


answer = st.one_of(st.none(), st.integers(min_value=1, max_value=5))


@given(st.lists(st.fixed_dictionaries({"a": answer, "b": answer, "c": answer}), max_size=20), st.booleans())
def test_rates_and_points_stay_within_their_maxima(rows, answered_only):
    instrument = Instrument(five_level_scale(), (Factor("F1", ("a", "b")), Factor("F2", ("c",))))
    scheme = points_scheme("answered_only" if answered_only else "zero")
    scores = score_points(instrument, scheme, [Ballot(str(i), r) for i, r in enumerate(rows)])
    if scores.tally.rate is not None:
        assert 0 <= scores.tally.rate <= 1
    for f in scores.factors:
        assert f.scored == (f.tally.answered > 0)
        if f.points is not None:
            assert Fraction(6, 5) <= f.points <= 6 or not answered_only
            assert 0 <= f.points <= f.max_points
    assert presented_total(scores, TRUNCATE) <= Decimal(12)
    assert PointsTally(1, 2, 1) + PointsTally(1, 3, 1) == PointsTally(2, 5, 2)
