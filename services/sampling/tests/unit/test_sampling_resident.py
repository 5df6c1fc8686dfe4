from collections import Counter
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipas_sampling.domain.errors import InvalidParameter
from sipas_sampling.domain.prng import RandomStream
from sipas_sampling.domain.resident import Area, draw_communes, draw_households, draw_villages, systematic_pps

SEED = "5b0e8c1d2f3a4b5c6d7e8f90a1b2c3d4"
SALT = b"resident-2024-campaign-salt"


def test_systematic_pps_probabilities_are_proportional_to_size():
    sizes = [10, 20, 30, 40]
    hits: Counter[int] = Counter()
    runs = 800
    for r in range(runs):
        picks = systematic_pps(sizes, 2, RandomStream(SEED, "pps", str(r)))
        assert len(picks) == 2
        assert picks == {i: Fraction(2 * sizes[i], 100) for i in picks}
        hits.update(picks.keys())
    for i, size in enumerate(sizes):  # expected 2·M_i/M: .2 .4 .6 .8
        expected = runs * 2 * size / 100
        assert abs(hits[i] - expected) < 0.15 * expected + 10


def test_large_units_are_taken_with_certainty():
    # 2·500/560 > 1: the big village is certain; one of the rest is drawn with 1·M_i/60
    picks = systematic_pps([500, 10, 20, 30], 2, RandomStream(SEED, "certain"))
    assert picks[0] == 1
    [(other, p)] = [(i, p) for i, p in picks.items() if i != 0]
    assert p == Fraction([500, 10, 20, 30][other], 60)


def test_pps_edge_cases():
    stream = RandomStream(SEED, "edges")
    assert systematic_pps([5, 0, 7], 0, stream) == {}
    assert systematic_pps([5, 0, 7], 5, stream) == {0: 1, 2: 1}   # capped at the units with any size
    assert systematic_pps([0, 0], 1, stream) == {}
    with pytest.raises(InvalidParameter):
        systematic_pps([3, -1], 1, stream)


@given(st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=25), st.integers(0, 30),
       st.integers(0, 10_000))
def test_pps_selects_exactly_n_with_probabilities_summing_to_n(sizes, n, r):
    picks = systematic_pps(sizes, n, RandomStream(SEED, str(r)))
    wanted = min(n, sum(1 for s in sizes if s > 0))
    assert len(picks) == wanted
    assert all(0 < p <= 1 and sizes[i] > 0 for i, p in picks.items())


COMMUNES = [Area(f"C{i:02d}", households=200 + 37 * i) for i in range(12)]
VILLAGES = [Area(f"V{i:02d}", households=h) for i, h in enumerate([120, 80, 45, 300, 60, 95, 150])]


def test_three_stages_multiply_inclusion_probabilities():
    communes = draw_communes(COMMUNES, 3, seed=SEED, stratum="province-29")
    assert len(communes.selected) == 3 and all(c.conditional == Fraction(3, 12) for c in communes.selected)
    commune = communes.selected[0]

    villages = draw_villages(commune, VILLAGES, 3, seed=SEED)
    assert len(villages.selected) == 3 and villages.parent == commune.code
    for v in villages.selected:
        size = next(a.households for a in VILLAGES if a.code == v.code)
        # V03 is certain (3·300/850 > 1); the other two are drawn from the remaining 550 households
        assert v.conditional == (1 if v.code == "V03" else Fraction(2 * size, 550))
        assert v.inclusion == commune.inclusion * v.conditional
    village = villages.selected[0]

    listing = [f"{village.code}-hh{i:03d}" for i in range(40)]
    households = draw_households(village, listing, 15, seed=SEED, campaign_salt=SALT, reserves=5)
    assert len(households.selected) == 15 and len(households.reserves) == 5
    chosen = {h.code for h in households.selected}
    assert not chosen & {h.code for h in households.reserves}
    for h in (*households.selected, *households.reserves):
        assert h.conditional == Fraction(15, 40)
        assert h.inclusion == Fraction(3, 12) * village.conditional * Fraction(15, 40)
        assert h.weight == 1 / h.inclusion
        assert h.unit_id is not None and len(h.unit_id) == 24


def test_the_300_household_village_is_certain():
    commune = draw_communes(COMMUNES, 1, seed=SEED, stratum="p").selected[0]
    villages = draw_villages(commune, VILLAGES, 3, seed=SEED)
    assert any(v.code == "V03" and v.conditional == 1 for v in villages.selected)  # 3·300/850 > 1


def test_stages_are_reproducible_and_order_free():
    a = draw_communes(COMMUNES, 4, seed=SEED, stratum="p", method="pps")
    b = draw_communes(list(reversed(COMMUNES)), 4, seed=SEED, stratum="p", method="pps")
    assert a == b
    total = sum(c.households for c in COMMUNES)
    sizes = {c.code: c.households for c in COMMUNES}
    assert len(a.selected) == 4 and all(c.conditional == Fraction(4 * sizes[c.code], total) for c in a.selected)
    everyone = draw_communes(COMMUNES, 0, seed=SEED, stratum="p", method="all")
    assert len(everyone.selected) == 12 and all(c.inclusion == 1 for c in everyone.selected)


def test_small_villages_are_taken_whole():
    village = draw_villages(draw_communes(COMMUNES, 1, seed=SEED, stratum="p").selected[0], VILLAGES, 1,
                            seed=SEED).selected[0]
    households = draw_households(village, ["a", "b", "c"], 15, seed=SEED, campaign_salt=SALT, reserves=5)
    assert len(households.selected) == 3 and households.reserves == ()
    assert all(h.conditional == 1 for h in households.selected)


def test_listings_must_be_clean():
    village = draw_communes(COMMUNES, 1, seed=SEED, stratum="p").selected[0]
    with pytest.raises(InvalidParameter):
        draw_households(village, ["a", "a "], 1, seed=SEED, campaign_salt=SALT)
    with pytest.raises(InvalidParameter):
        draw_villages(village, [Area("V1", 3), Area("V1", 4)], 1, seed=SEED)
