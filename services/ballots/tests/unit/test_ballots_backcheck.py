import random
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipas_ballots.domain.backcheck import (
    AcceptedBallot,
    BackcheckDecision,
    BackcheckResult,
    backcheck_count,
    decide_backcheck,
    select_backchecks,
)
from sipas_ballots.domain.errors import InvalidParameter, UnknownBallot

SEED = "9f1c2a7be0d54c3f8a61b2e4d7c90f13"
OTHER_SEED = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(("accepted", "count"), [
    (0, 0), (1, 1), (2, 2), (5, 2), (20, 2), (21, 3), (25, 3), (100, 10), (101, 11),
])
def test_ten_percent_at_least_two_at_most_all(accepted, count):
    assert backcheck_count(accepted) == count


def test_the_share_and_minimum_are_settings():
    assert backcheck_count(40, Decimal("0.25"), 0) == 10
    assert backcheck_count(40, Fraction(0), 3) == 3
    assert backcheck_count(3, Fraction(1), 0) == 3
    with pytest.raises(InvalidParameter):
        backcheck_count(10, Decimal("1.5"))


ballot_sets = st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(["e1", "e2", "e3"])), max_size=80,
                       unique_by=lambda t: t[0]).map(
    lambda rows: [AcceptedBallot(f"b{n}", e) for n, e in rows])


@given(ballot_sets, st.sampled_from([Fraction(1, 10), Fraction(1, 3), Fraction(0)]), st.integers(0, 4))
def test_picks_are_a_subset_of_the_right_size_and_reproducible(ballots, share, minimum):
    chosen = select_backchecks(ballots, SEED, "c-2025", share, minimum)
    by_enumerator: dict[str, set[str]] = {}
    for b in ballots:
        by_enumerator.setdefault(b.enumerator_id, set()).add(b.ballot_id)
    assert set(chosen) == set(by_enumerator)
    for enumerator, ids in by_enumerator.items():
        picked = chosen[enumerator]
        assert set(picked) <= ids and len(set(picked)) == len(picked)
        assert len(picked) == backcheck_count(len(ids), share, minimum)
    shuffled = list(ballots)
    random.Random(1).shuffle(shuffled)
    assert select_backchecks(shuffled, SEED, "c-2025", share, minimum) == chosen


def test_the_seed_and_campaign_change_the_picks_and_later_ballots_do_not_reshuffle():
    ballots = [AcceptedBallot(f"b{n}", "e1") for n in range(200)]
    chosen = select_backchecks(ballots, SEED, "c-2025")["e1"]
    assert len(chosen) == 20
    assert select_backchecks(ballots, OTHER_SEED, "c-2025")["e1"] != chosen
    assert select_backchecks(ballots, SEED, "c-2026")["e1"] != chosen
    more = select_backchecks([*ballots, *(AcceptedBallot(f"late{n}", "e1") for n in range(10))], SEED, "c-2025")
    kept = [b for b in more["e1"] if not b.startswith("late")]
    assert kept == list(chosen[:len(kept)])


def test_selection_needs_a_real_seed_and_distinct_ballots():
    with pytest.raises(InvalidParameter) as raised:
        select_backchecks([], "1234", "c")
    assert raised.value.field == "seed"
    with pytest.raises(InvalidParameter):
        select_backchecks([], SEED.upper(), "c")
    with pytest.raises(InvalidParameter) as twice:
        select_backchecks([AcceptedBallot("b1", "e1"), AcceptedBallot("b1", "e2")], SEED, "c")
    assert twice.value.field == "ballots"


def test_a_confirmed_fabrication_voids_the_ballot_and_puts_the_others_under_review():
    decision = decide_backcheck(BackcheckResult("b2", "e1", "fabricated"), ["b3", "b1", "b2"])
    assert decision.void == ("b2",) and decision.review == ("b1", "b3")
    assert decision.reason is not None and "e1" in decision.reason


@pytest.mark.parametrize("outcome", ["confirmed", "unreachable"])
def test_other_outcomes_change_nothing(outcome):
    assert decide_backcheck(BackcheckResult("b2", "e1", outcome), ["b1", "b2"]) == BackcheckDecision(
        outcome, (), (), None)


def test_a_back_check_of_a_ballot_the_enumerator_does_not_hold_is_refused():
    with pytest.raises(UnknownBallot):
        decide_backcheck(BackcheckResult("b9", "e1", "fabricated"), ["b1"])
    with pytest.raises(InvalidParameter):
        decide_backcheck(BackcheckResult("b1", "e1", "maybe"), ["b1"])  # type: ignore[arg-type]
