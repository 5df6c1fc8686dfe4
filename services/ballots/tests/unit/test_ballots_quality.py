import itertools
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipas_ballots.domain.errors import InvalidParameter
from sipas_ballots.domain.quality import (
    Flag,
    KeyedAnswers,
    SimilarPair,
    median_seconds,
    near_identical,
    near_identical_pairs,
    speeder,
    straight_lining,
)

ITEMS = [f"{f}.{i}" for f, n in zip(range(1, 6), (4, 5, 6, 3, 4), strict=True) for i in range(1, n + 1)]


@given(st.dictionaries(st.sampled_from(ITEMS), st.one_of(st.none(), st.integers(1, 5))), st.integers(1, 23))
def test_straight_lining_iff_all_answered_equal_and_enough(answers, minimum):
    answered = [v for v in answers.values() if v is not None]
    expected = len(answered) >= minimum and len(set(answered)) == 1
    flag = straight_lining(answers, ITEMS, minimum)
    assert (flag is not None) == expected
    if flag:
        assert flag.kind == "straight_lining" and str(answered[0]) in flag.reason


def test_straight_lining_defaults_and_criteria():
    assert straight_lining(dict.fromkeys(ITEMS[:10], 5)) == Flag("straight_lining", "all 10 answered criteria are 5")
    assert straight_lining(dict.fromkeys(ITEMS[:9], 5)) is None
    assert straight_lining({**dict.fromkeys(ITEMS, 4), "1.0": 2}, ITEMS) is not None  # overall item not a criterion
    assert straight_lining({**dict.fromkeys(ITEMS, 4), "1.0": 2}) is None


def test_speeders_are_under_half_the_median():
    assert speeder(29.9, 60) is not None
    assert speeder(30, 60) is None
    assert speeder(None, 60) is None and speeder(10, None) is None and speeder(1, 0) is None
    assert speeder(float("nan"), 60) is None and speeder(1, float("inf")) is None
    flag = speeder(12.5, 60.0)
    assert flag is not None and flag.kind == "speeder" and "12.5 s" in flag.reason and "60 s" in flag.reason


def test_median_of_known_entry_times():
    assert median_seconds([10, None, 30, 20]) == 20
    assert median_seconds([10, 40]) == 25
    assert median_seconds([None]) is None


def brute_force(ballots, items, k):
    found = set()
    for a, b in itertools.combinations(ballots, 2):
        if a.enumerator_id != b.enumerator_id:
            continue
        d = sum(a.answers.get(i) != b.answers.get(i) for i in items)
        if d <= k:
            found.add((frozenset({a.ballot_id, b.ballot_id}), a.enumerator_id, d))
    return found


small_items = ["1", "2", "3", "4", "5"]
ballot_lists = st.lists(
    st.tuples(st.sampled_from(["e1", "e2"]),
              st.fixed_dictionaries({}, optional=dict.fromkeys(small_items, st.one_of(st.none(), st.integers(1, 3))))),
    max_size=25,
).map(lambda rows: [KeyedAnswers(f"b{i}", e, a) for i, (e, a) in enumerate(rows)])


@settings(max_examples=200)
@given(ballot_lists, st.integers(0, 3))
def test_near_identical_pairs_match_the_brute_force(ballots, k):
    pairs = list(near_identical_pairs(ballots, small_items, k))
    got = {(frozenset({p.first, p.second}), p.enumerator_id, p.differences) for p in pairs}
    assert len(got) == len(pairs)
    assert got == brute_force(ballots, small_items, k)
    flagged = {b for pair, _, _ in got for b in pair}
    assert set(near_identical(ballots, small_items, k)) == flagged


def test_near_identical_is_per_enumerator_and_says_with_whom():
    base = dict.fromkeys(ITEMS, 4)
    ballots = [
        KeyedAnswers("a1", "enum-A", base),
        KeyedAnswers("a2", "enum-A", {**base, "3.2": 5}),
        KeyedAnswers("a3", "enum-A", {**base, "3.2": 5, "1.1": 2}),
        KeyedAnswers("b1", "enum-B", base),
    ]
    assert list(near_identical_pairs(ballots, ITEMS)) == [
        SimilarPair("a1", "a2", "enum-A", 1), SimilarPair("a2", "a3", "enum-A", 1)]
    flags = near_identical(ballots, ITEMS)
    assert set(flags) == {"a1", "a2", "a3"}
    assert flags["a2"].reason == "answers within 1 item(s) of 2 other ballot(s) of enumerator enum-A: a1, a3"


def test_near_identical_scales_to_thousands_of_ballots_per_enumerator():
    # 3,000 ballots of one enumerator: a third all "5", the rest varied; must not go quadratic in time
    ballots, state = [], 12345
    for n in range(3000):
        answers = dict.fromkeys(ITEMS, 5)
        if n % 3:
            for item in ITEMS:
                state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
                answers[item] = 1 + (state >> 33) % 5
        ballots.append(KeyedAnswers(f"b{n}", "enum", answers))
    start = time.perf_counter()
    flags = near_identical(ballots, ITEMS)
    assert time.perf_counter() - start < 5
    assert all(f"b{n}" in flags for n in range(0, 3000, 3))
    assert "and 994 more" in flags["b0"].reason


def test_max_differences_is_bounded():
    with pytest.raises(InvalidParameter):
        near_identical([], ITEMS, 4)
    with pytest.raises(InvalidParameter):
        list(near_identical_pairs([], ITEMS, -1))
