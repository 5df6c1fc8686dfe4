import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipas_scoring.domain.ranking import Ranked, RankInput, rank_with_intervals


def test_overlapping_intervals_share_ranks():
    units = [RankInput("A", 80, 70, 90), RankInput("B", 75, 65, 85), RankInput("C", 50, 45, 55)]
    assert rank_with_intervals(units) == [
        Ranked("A", rank=1, best=1, worst=2, of=3),
        Ranked("B", rank=2, best=1, worst=2, of=3),
        Ranked("C", rank=3, best=3, worst=3, of=3),
    ]


def test_suppressed_units_are_not_ranked():
    units = [RankInput("A", 80, 70, 90), RankInput("B", 99, 60, 100), RankInput("C", 50, 45, 55)]
    ranked = rank_with_intervals(units, suppressed={"B"})
    assert [(r.key, r.rank, r.best, r.worst, r.of) for r in ranked] == [("A", 1, 1, 1, 2), ("C", 2, 2, 2, 2)]


def test_ties_and_lower_is_better():
    units = [RankInput("A", 60, 50, 70), RankInput("B", 60, 58, 62), RankInput("C", 10, 5, 15)]
    assert [(r.key, r.rank) for r in rank_with_intervals(units)] == [("A", 1), ("B", 1), ("C", 3)]
    lower = rank_with_intervals(units, higher_is_better=False)
    assert [(r.key, r.rank, r.best, r.worst) for r in lower] == [("C", 1, 1, 1), ("A", 2, 2, 3), ("B", 2, 2, 3)]


def test_refusals():
    with pytest.raises(ValueError):
        RankInput("A", 95, 70, 90)
    with pytest.raises(ValueError):
        rank_with_intervals([RankInput("A", 1, 0, 2), RankInput("A", 1, 0, 2)])


@st.composite
def units(draw):
    result = []
    for i in range(draw(st.integers(0, 15))):
        a, b, c = sorted(draw(st.lists(st.integers(0, 100), min_size=3, max_size=3)))
        result.append(RankInput(f"u{i}", b, a, c))
    return result


@given(units(), st.booleans())
def test_rank_interval_contains_the_rank(inputs, higher_is_better):
    suppressed = {u.key for u in inputs[::4]}
    ranked = rank_with_intervals(inputs, suppressed, higher_is_better)
    assert len(ranked) == len(inputs) - len(suppressed)
    for r in ranked:
        assert 1 <= r.best <= r.rank <= r.worst <= r.of == len(ranked)


@st.composite
def float_units(draw):
    """Units with float figures and ties, as the figures rank them (intervals of floats)."""
    result = []
    for i in range(draw(st.integers(0, 30))):
        a, b, c = sorted(draw(st.lists(st.sampled_from([0.0, 12.5, 33.3, 50.0, 66.7, 87.5, 100.0])
                                       | st.floats(0, 100), min_size=3, max_size=3)))
        result.append(RankInput(f"u{i}", b, a, c))
    return result


@given(float_units(), st.booleans())
def test_ranks_are_the_counts_the_definitions_name(inputs, higher_is_better):
    """The binary searches give exactly the counts of the module's definitions, pair by pair."""
    suppressed = {u.key for u in inputs[::5]}
    ranked = {r.key: r for r in rank_with_intervals(inputs, suppressed, higher_is_better)}
    sign = 1 if higher_is_better else -1
    kept = [(u.key, sign * u.estimate, min(sign * u.lower, sign * u.upper), max(sign * u.lower, sign * u.upper))
            for u in inputs if u.key not in suppressed]
    assert set(ranked) == {k for k, *_ in kept}
    for key, estimate, lower, upper in kept:
        assert ranked[key] == Ranked(key, rank=1 + sum(e > estimate for _, e, _, _ in kept),
                                     best=1 + sum(low > upper for _, _, low, _ in kept),
                                     worst=len(kept) - sum(high < lower for _, _, _, high in kept), of=len(kept))
