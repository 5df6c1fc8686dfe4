import datetime as dt
from decimal import Decimal
from fractions import Fraction

import pytest

from sipas_sampling.domain.allocation import build_plan
from sipas_sampling.domain.draw import ReservePolicy, draw_sample
from sipas_sampling.domain.errors import InvalidParameter, ReservesExhausted, UnitNotActive
from sipas_sampling.domain.frame import FrameRow
from sipas_sampling.domain.replacement import Roster
from sipas_sampling.domain.strata import Stratification
from sipas_sampling.domain.weights import (
    StratumOutcome,
    as_decimal,
    design_weight,
    outcomes,
    stratum_weight,
    stratum_weights,
)

SEED = "a" * 64
SALT = b"weights-campaign-salt-0001"
BY_AGENCY = Stratification.of("agency_code")


def frame(sizes):
    return [
        FrameRow(agency, "Cấp phép xây dựng", "xây dựng", f"{agency}/{i}", dt.date(2024, 5, 1), "organisation",
                 f"Công ty {i}", None, f"Số {i} phố Huế")
        for agency, n in sizes.items() for i in range(n)
    ]


FRAME = frame({"A": 100, "B": 30})
PLAN = build_plan(("agency_code",), {("A",): 100, ("B",): 30}, {("A",): 8, ("B",): 3})
DRAW = draw_sample(FRAME, PLAN, BY_AGENCY, seed=SEED, campaign_salt=SALT, reserves=ReservePolicy(count=2))


def test_design_weight_is_frame_units_per_sampled_unit():
    assert design_weight(100, 8) == Fraction(25, 2)
    assert design_weight(1000, 286) == Fraction(500, 143)
    with pytest.raises(InvalidParameter):
        design_weight(10, 0)
    with pytest.raises(InvalidParameter):
        design_weight(10, 11)


def test_non_response_adjustment_within_the_stratum():
    weight = stratum_weight(StratumOutcome(("A",), population=100, sampled=8, responded=5))
    assert weight.design == Fraction(100, 8)
    assert weight.adjustment == Fraction(8, 5)
    assert weight.final == 20  # the 5 respondents stand for all 100
    nobody = stratum_weight(StratumOutcome(("B",), 30, 3, 0))
    assert nobody.design == 10 and nobody.adjustment is None and nobody.final is None
    with pytest.raises(InvalidParameter, match="4 respondents for 3"):
        stratum_weight(StratumOutcome(("B",), 30, 3, 4))
    assert set(stratum_weights([StratumOutcome(("A",), 100, 8, 8), StratumOutcome(("C",), 5, 0, 0)])) == {("A",)}


def test_replacement_takes_the_next_reserve_in_order():
    stratum = DRAW.stratum(("A",))
    roster = Roster(stratum)
    first, second = stratum.selected[0], stratum.selected[1]
    roster, r1 = roster.replace(first.unit_id, "refused")
    assert (r1.replaced, r1.replacement, r1.reason) == (first, stratum.reserves[0], "refused")
    assert roster.active[0] == stratum.reserves[0] and roster.active[1:] == stratum.selected[1:]
    roster, r2 = roster.replace(second.unit_id, "moved away")
    assert r2.replacement == stratum.reserves[1]
    assert roster.reserves_left == ()
    with pytest.raises(ReservesExhausted, match="all 2 of its reserves") as caught:
        roster.replace(stratum.selected[2].unit_id, "not reachable")
    assert caught.value.stratum == ("A",)


def test_a_replacement_can_itself_be_replaced_but_not_a_replaced_unit():
    stratum = DRAW.stratum(("A",))
    roster, first = Roster(stratum).replace(stratum.selected[0].unit_id, "refused")
    with pytest.raises(UnitNotActive):
        roster.replace(stratum.selected[0].unit_id, "again")
    with pytest.raises(UnitNotActive):
        roster.replace(DRAW.stratum(("B",)).selected[0].unit_id, "wrong stratum")
    roster, second = roster.replace(first.replacement.unit_id, "replacement refused too")
    assert roster.active[0] == stratum.reserves[1] and second.replaced == stratum.reserves[0]
    with pytest.raises(InvalidParameter):
        roster.replace(roster.active[1].unit_id, "  ")


def test_replacements_keep_the_stratum_weight():
    a = DRAW.stratum(("A",))
    roster, replacement = Roster(a).replace(a.selected[0].unit_id, "refused")
    # every slot of A answered, the first through its replacement; B: 2 of 3 answered
    responded = {u.unit_id for u in roster.active} | {DRAW.stratum(("B",)).selected[i].unit_id for i in (0, 1)}
    responded.add(a.selected[0].unit_id)  # a late answer from the replaced unit does not count twice
    result = outcomes(DRAW, {("A",): roster}, responded)
    assert result == [StratumOutcome(("A",), 100, 8, 8), StratumOutcome(("B",), 30, 3, 2)]
    weights = stratum_weights(result)
    assert weights[("A",)].final == weights[("A",)].design == Fraction(100, 8)
    assert weights[("B",)].final == Fraction(30, 2)
    assert replacement.replacement.stratum == replacement.replaced.stratum == ("A",)


def test_weights_as_decimals_for_events():
    assert as_decimal(Fraction(500, 143)) == Decimal("3.4965034965")
    assert as_decimal(Fraction(25, 2), places=2) == Decimal("12.50")
