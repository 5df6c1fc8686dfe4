from decimal import Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from sipas_sampling.domain.allocation import allocate, build_plan, plan_by_rule, plan_proportional
from sipas_sampling.domain.errors import InfeasibleAllocation, InvalidParameter
from sipas_sampling.domain.size import Slovin, margin_of_error
from sipas_sampling.domain.strata import StratumKey


def by(**sizes: int) -> dict[StratumKey, int]:
    return {(name,): size for name, size in sizes.items()}


def test_plain_proportional_allocation_is_exact():
    populations = by(a=1000, b=3000)
    assert allocate(populations, 400) == {("a",): 100, ("b",): 300}


def test_largest_remainder_makes_the_total_exact():
    # quotas 333.33…, 333.33…, 333.33… : one extra seat, to the first key on a full tie
    assert allocate(by(a=10, b=10, c=10), 10) == {("a",): 4, ("b",): 3, ("c",): 3}
    # quotas 1.5, 2.5, 6 (of 10): two seats left over, remainders tie at .5 -> larger stratum wins first
    assert allocate(by(x=30, y=50, z=120), 10) == {("x",): 1, ("y",): 3, ("z",): 6}


def test_floors_lift_small_strata_and_the_rest_share_proportionally():
    populations = by(c1=1000, c2=50, c3=300, c4=2000)
    sizes = allocate(populations, 600, floor=90)
    # c2 is taken whole (floor capped at N), c3 lifted to 90; 460 left for c1 : c4 = 1 : 2
    assert sizes == {("c1",): 153, ("c2",): 50, ("c3",): 90, ("c4",): 307}
    assert sum(sizes.values()) == 600


def test_cap_limits_large_strata():
    populations = by(c1=1000, c2=50, c3=300, c4=2000)
    sizes = allocate(populations, 600, floor=90, cap=300)
    assert sizes == {("c1",): 160, ("c2",): 50, ("c3",): 90, ("c4",): 300}


def test_census_when_the_target_is_the_whole_frame():
    populations = by(a=7, b=13)
    assert allocate(populations, 20) == populations


def test_infeasible_targets_are_refused_with_the_reason():
    populations = by(a=100, b=100, c=100)
    with pytest.raises(InfeasibleAllocation, match="floors alone need 270"):
        allocate(populations, 200, floor=90)
    with pytest.raises(InfeasibleAllocation, match="exceeds the 150"):
        allocate(populations, 200, cap=50)
    with pytest.raises(InfeasibleAllocation, match="exceeds the 300"):
        allocate(populations, 301)
    with pytest.raises(InvalidParameter):
        allocate(populations, 100, floor=50, cap=40)
    with pytest.raises(InvalidParameter):
        allocate(by(a=-1), 0)


def test_plan_carries_sizes_margins_and_totals():
    plan = plan_proportional(("agency",), by(a=1000, b=3000), 400, floor=90)
    assert plan.population == 4000 and plan.sample == 400
    [a, b] = plan.strata
    assert (a.key, a.population, a.sample) == (("a",), 1000, 100)
    assert (b.key, b.population, b.sample) == (("b",), 3000, 300)
    assert a.margin == margin_of_error(1000, 100) == Decimal("0.093018")  # 1.96 · 0.05 · sqrt(900/999)
    assert plan.margin is not None and a.margin is not None and b.margin is not None
    assert plan.margin < b.margin < a.margin
    assert plan.sizes() == {("a",): 100, ("b",): 300}


def test_plan_by_rule_sizes_each_stratum_with_its_own_formula():
    plan = plan_by_rule(("commune",), {("x",): 400, ("y",): 1000, ("z",): 60}, Slovin(), floor=90)
    assert plan.sizes() == {("x",): 200, ("y",): 286, ("z",): 60}
    capped = plan_by_rule(("commune",), {("x",): 400, ("y",): 1000}, Slovin(), floor=90, cap=250)
    assert capped.sizes() == {("x",): 200, ("y",): 250}


def test_build_plan_checks_its_inputs():
    with pytest.raises(InvalidParameter, match="sample 11"):
        build_plan(("a",), {("x",): 10}, {("x",): 11})
    with pytest.raises(InvalidParameter, match="same strata"):
        build_plan(("a",), {("x",): 10}, {("y",): 1})
    with pytest.raises(InvalidParameter, match="2 parts"):
        build_plan(("a",), {("x", "y"): 10}, {("x", "y"): 1})


strata = st.dictionaries(
    st.tuples(st.sampled_from(["an", "binh", "cao", "dong", "gia", "ha", "kim", "lam"])),
    st.integers(min_value=0, max_value=2_000),
    min_size=1,
    max_size=8,
)


@given(strata, st.integers(min_value=0, max_value=150), st.one_of(st.none(), st.integers(0, 600)), st.data())
def test_allocation_hits_the_target_within_bounds(populations, floor, cap, data):
    assume(cap is None or cap >= floor)
    lower = sum(min(floor, n) for n in populations.values())
    upper = sum(n if cap is None else min(cap, n) for n in populations.values())
    assume(lower <= upper)
    target = data.draw(st.integers(min_value=lower, max_value=upper))
    sizes = allocate(populations, target, floor=floor, cap=cap)
    assert sum(sizes.values()) == target
    for key, n in populations.items():
        assert min(floor, n) <= sizes[key] <= n
        if cap is not None:
            assert sizes[key] <= cap
    # more volume never means a smaller sample
    for a in populations:
        for b in populations:
            if populations[a] > populations[b]:  # ties may differ by one: the total must come out exact
                assert sizes[a] >= sizes[b]


@given(strata, st.data())
def test_unbounded_allocation_is_within_one_of_the_exact_quota(populations, data):
    total = sum(populations.values())
    assume(total > 0)
    target = data.draw(st.integers(min_value=0, max_value=total))
    sizes = allocate(populations, target)
    for key, n in populations.items():
        assert abs(sizes[key] * total - target * n) < total  # |n_h - target·N_h/N| < 1
