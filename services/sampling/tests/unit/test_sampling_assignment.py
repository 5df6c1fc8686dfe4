"""Field assignment: every unit once, areas kept whole, loads balanced within one area's size."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipas_sampling.domain.assignment import assign
from sipas_sampling.domain.errors import InvalidParameter

areas = st.dictionaries(st.text("abcdef", min_size=1, max_size=4), st.integers(1, 30), min_size=1, max_size=15)


@given(areas, st.integers(1, 6))
def test_assignment_keeps_areas_whole_and_balances_load(sizes, n):
    units = {a: [f"{a}-{i}" for i in range(k)] for a, k in sizes.items()}
    enumerators = [f"e{i}" for i in range(n)]
    plan = assign(units, enumerators)
    assert sorted(plan) == sorted(u for us in units.values() for u in us)
    for members in units.values():
        assert len({plan[u] for u in members}) == 1
    load = {e: sum(1 for v in plan.values() if v == e) for e in enumerators}
    assert max(load.values()) - min(load.values()) <= max(sizes.values())


def test_assignment_is_deterministic_and_refuses_bad_lists():
    units = {"A": ["a1", "a2", "a3"], "B": ["b1", "b2"], "C": ["c1", "c2"]}
    assert assign(units, ["x", "y"]) == {"a1": "x", "a2": "x", "a3": "x", "b1": "y", "b2": "y", "c1": "y", "c2": "y"}
    with pytest.raises(InvalidParameter):
        assign(units, [])
    with pytest.raises(InvalidParameter):
        assign(units, ["x", "x"])
