"""The resident design's stage rows (domain/listing.py) and the stage digests and household keys of resident.py."""

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from sipas_sampling.domain.listing import check_commune, check_household, check_village, unlisted
from sipas_sampling.domain.resident import (
    Area,
    StageUnit,
    area_digest,
    draw_households,
    fraction_text,
    household_key,
    listing_digest,
    stage_digest,
)

SEED = "5b0e8c1d2f3a4b5c6d7e8f90a1b2c3d4"
SALT = b"resident-2026-campaign-salt"


def codes(check):
    return sorted((e.field, e.code) for e in check.errors)


def test_commune_rows_read_counts_with_vietnamese_grouping():
    known = {"H01.1", "H01.2"}.__contains__
    seen: set[str] = set()
    assert check_commune({"commune_code": " H01.1 ", "households": "1.250"}, known, seen, 2).row.households == 1250
    assert check_commune({"commune_code": "H01.2", "households": 7.0}, known, seen, 3).row.households == 7
    again = check_commune({"commune_code": "H01.1", "households": "5"}, known, seen, 4)
    assert again.row is None and codes(again) == [("commune_code", "duplicate")]
    for bad in ("-3", "1,5", "mười", "12.5", True):
        check = check_commune({"commune_code": "H01.2", "households": bad}, known, set(), 5)
        assert codes(check) == [("households", "malformed")], bad
    check = check_commune({"commune_code": "H79.1"}, known, set(), 6)
    assert codes(check) == [("commune_code", "unknown_agency"), ("households", "missing")]


def test_village_rows_must_belong_to_a_selected_commune_and_have_a_plain_code():
    seen: set[str] = set()
    ok = check_village({"commune_code": "H01.1", "village_code": "V-01", "village_name": "Thôn  Đông",
                        "households": 120}, {"H01.1"}, seen, 2)
    assert ok.row is not None and ok.row.name == "Thôn Đông"
    check = check_village({"commune_code": "H01.2", "village_code": "V/01", "village_name": "",
                           "households": "x"}, {"H01.1"}, seen, 3)
    assert codes(check) == [("commune_code", "not_selected"), ("households", "malformed"),
                            ("village_code", "malformed"), ("village_name", "missing")]
    dup = check_village({"commune_code": "H01.1", "village_code": "V-01", "village_name": "B", "households": 1},
                        {"H01.1"}, seen, 4)
    assert codes(dup) == [("village_code", "duplicate")]


def test_household_rows_never_repeat_the_personal_data_they_reject():
    seen: set[tuple[str, str]] = set()
    good = check_household({"village_code": "V1", "household_id": "1", "head_name": "Lê  Văn Tám",
                            "phone": "+84 912 345 678", "address": ""}, {"V1"}, seen, 2)
    assert good.row is not None and good.row.phone == "0912345678" and good.row.head_name == "Lê Văn Tám"
    assert good.row.address is None
    other_village = check_household({"village_code": "V2", "household_id": "1", "head_name": "B", "address": "x"},
                                    {"V1", "V2"}, seen, 3)
    assert other_village.row is not None  # numbered per village: '1' may recur in another village
    bad = check_household({"village_code": "V1", "household_id": "1", "head_name": "",
                           "phone": "0912 34x 678"}, {"V1"}, seen, 4)
    assert codes(bad) == [("head_name", "missing"), ("household_id", "duplicate"), ("phone", "malformed")]
    assert all("0912" not in e.message for e in bad.errors)
    unreachable = check_household({"village_code": "V9", "household_id": "2", "head_name": "C"}, {"V1"}, seen, 5)
    assert codes(unreachable) == [("phone", "missing"), ("village_code", "not_selected")]


def test_unlisted_reports_each_gap_on_line_zero():
    gaps = unlisted({"V1": "selected village V1", "V2": "selected village V2"}, {"V2"}, "village_code", "why")
    assert [(e.line, e.field, e.code) for e in gaps] == [(0, "village_code", "unlisted")]
    assert gaps[0].message.startswith("selected village V1 has no accepted row")


@given(st.text(min_size=1, max_size=8), st.text(min_size=1, max_size=8), st.text(min_size=1, max_size=8),
       st.text(min_size=1, max_size=8))
def test_household_keys_are_unambiguous(v1, h1, v2, h2):
    if household_key(v1, h1) == household_key(v2, h2):
        assert (" ".join(v1.split()), " ".join(h1.split())) == (" ".join(v2.split()), " ".join(h2.split()))


def test_a_household_numbered_alike_in_two_villages_gets_two_unit_ids():
    def drawn(village):
        unit = StageUnit(village, Fraction(1), Fraction(1), 1)
        return draw_households(unit, ["1"], 1, seed=SEED, campaign_salt=SALT).selected[0].unit_id

    assert drawn("V1") != drawn("V2")


def test_stage_digest_pins_every_parent_whatever_the_order():
    villages = [Area("V2", 80), Area("V1", 120)]
    parents = {"C1": area_digest(villages), "C2": area_digest([Area("V3", 5)])}
    assert area_digest(list(reversed(villages))) == parents["C1"]
    assert stage_digest(parents) == stage_digest(dict(reversed(list(parents.items()))))
    assert stage_digest(parents) != stage_digest({"C1": parents["C1"]})
    assert stage_digest(parents) != stage_digest({"C1": parents["C2"], "C2": parents["C1"]})
    assert listing_digest("V1", ["2", "1"]) == listing_digest("V1", ["1", "2"]) != listing_digest("V1", ["1"])
    assert fraction_text(Fraction(1)) == "1/1" and fraction_text(Fraction(48, 110)) == "24/55"
