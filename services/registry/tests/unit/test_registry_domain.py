"""Registry decisions without I/O: units over time, imports row by row, campaign steps."""

from __future__ import annotations

import datetime as dt
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipas_registry.domain import importing
from sipas_registry.domain.campaigns import Actor, Campaign, advance
from sipas_registry.domain.errors import AlreadyExists, Immutable, NotAllowed, RegistryError
from sipas_registry.domain.units import RegisterUnit, Unit, merge, register, search_key, split

D = dt.date
HN = Unit("p01", "01", "Hà Nội", "province", None, "01", D(2008, 8, 1), None, 1)


def cmd(code="C1", level="commune", parent="p01", province="01", start=D(2025, 7, 1), **kw) -> RegisterUnit:
    return RegisterUnit(f"id-{code}", code, "Phường Ba Đình", level, parent, province, start, **kw)


def test_search_key_ignores_accents_case_and_spacing():
    assert search_key("Thành phố  Hồ Chí Minh") == search_key("THANH PHO HO CHI MINH") == "thanh pho ho chi minh"
    assert search_key("Đắk Lắk") == "dak lak"
    decomposed = unicodedata.normalize("NFD", "Quảng Ngãi")
    assert search_key(decomposed) == search_key("Quảng Ngãi") == "quang ngai"


@given(st.text(max_size=40))
def test_search_key_is_idempotent(name):
    assert search_key(search_key(name)) == search_key(name)


def test_register_checks_parent_level_validity_and_code_overlap():
    assert register(cmd(), existing=None, parent=HN).parent_id == "p01"
    with pytest.raises(RegistryError, match="cannot sit under"):
        register(cmd(level="department", parent="c"), existing=None,
                 parent=Unit("c", "C", "Xã", "commune", "p01", "01", D(2020, 1, 1), None))
    ended = Unit("p02", "02", "Hà Giang", "province", None, "02", D(2008, 8, 1), D(2025, 6, 30))
    with pytest.raises(RegistryError, match="not valid on 2025-07-01"):
        register(cmd(province="02", parent="p02"), existing=None, parent=ended)
    clash = Unit("x", "C1", "Khác", "commune", "p01", "01", D(2020, 1, 1), None)
    with pytest.raises(AlreadyExists, match="code C1 is already used by Khác"):
        register(cmd(), existing=None, parent=HN, clashes=[clash])
    elsewhere = Unit("y", "C1", "Xã Bên Kia", "commune", "p79", "79", D(2020, 1, 1), None)
    with pytest.raises(AlreadyExists, match=r"used by a unit of another province$") as refused:
        register(cmd(), existing=None, parent=HN, clashes=[elsewhere])
    assert "Bên Kia" not in str(refused.value) and "y" not in str(refused.value).split()
    earlier = Unit("x", "C1", "Khác", "commune", "p01", "01", D(2020, 1, 1), D(2025, 6, 30))
    assert register(cmd(), existing=None, parent=HN, clashes=[earlier]).code == "C1"  # periods do not overlap


def test_merge_may_reuse_a_predecessors_code_and_ends_them_the_day_before():
    tq = Unit("p08", "08", "Tuyên Quang", "province", None, "08", D(2008, 8, 1), None, 1)
    hg = Unit("p02", "02", "Hà Giang", "province", None, "02", D(2008, 8, 1), None, 1)
    new = RegisterUnit("n08", "08", "Tuyên Quang", "province", None, "08", D(2025, 7, 1))
    registered, merged = merge([tq, hg], new, existing=None, parent=None, clashes=[tq], legal_basis="NQ 202")
    assert registered.legal_basis == "NQ 202" and merged.predecessor_ids == ["p08", "p02"]
    with pytest.raises(RegistryError, match="listed twice"):
        merge([tq, tq], new, existing=None, parent=None, clashes=[], legal_basis="NQ")


def test_split_needs_two_successors_of_the_same_level_starting_on_the_day():
    old = Unit("c", "C", "Xã Cũ", "commune", "p01", "01", D(2010, 1, 1), None, 1)
    a, b = cmd("A", start=D(2026, 1, 1)), cmd("B", start=D(2026, 1, 1))
    events = split(old, [(a, None, HN, []), (b, None, HN, [])], "QĐ", D(2026, 1, 1))
    assert [type(e).__name__ for e in events] == ["AgencyRegistered", "AgencyRegistered", "AgencySplit"]
    with pytest.raises(RegistryError, match="at least two"):
        split(old, [(a, None, HN, [])], "QĐ", D(2026, 1, 1))
    with pytest.raises(RegistryError, match="starts on the effective date"):
        split(old, [(a, None, HN, []), (cmd("B", start=D(2026, 2, 1)), None, HN, [])], "QĐ", D(2026, 1, 1))


def lookups(scope=("01",)):
    units = {"01": [HN]}
    return importing.Lookups(
        units_with_code=lambda c: units.get(c, []),
        province_exists=lambda code, day: code in ("01", "79"),
        in_scope=lambda p: p in scope)


def test_import_reports_every_bad_row_and_orders_parents_first():
    rows = [
        {"code": "K1", "name": "Xã K1", "level": "xã", "parent_code": "D9", "province": "1", "valid_from": "01/07/2025"},
        {"code": "D9", "name": "Huyện cũ", "level": "commune", "parent_code": "01", "province": "01",
         "valid_from": "2025-07-01"},
        {"code": "K2", "name": "", "level": "commune", "parent_code": "01", "province": "01", "valid_from": "2025-07-01"},
        {"code": "K3", "name": "Xã", "level": "village", "parent_code": "01", "province": "01",
         "valid_from": "2025-07-01"},
        {"code": "K4", "name": "Xã", "level": "commune", "parent_code": "01", "province": "01",
         "valid_from": "2025-13-01"},
        {"code": "K5", "name": "Xã", "level": "commune", "parent_code": "01", "province": "79",
         "valid_from": "2025-07-01"},
        {"code": "D9", "name": "Trùng", "level": "commune", "parent_code": "01", "province": "01",
         "valid_from": "2025-07-01"},
        {"code": "K6", "name": "Xã", "level": "commune", "parent_code": "ZZ", "province": "01",
         "valid_from": "2025-07-01"},
    ]
    plan = importing.plan_import(rows, lookups(), iter(f"id{i}" for i in range(100)).__next__)
    assert [(e.row, e.field) for e in plan.errors] == [
        (1, "parent_code"), (3, "name"), (4, "level"), (5, "valid_from"), (6, "province"), (7, "code"),
        (8, "parent_code")]
    assert plan.commands == []
    good = [rows[0] | {"parent_code": "D9"}, rows[1] | {"level": "district", "valid_from": "2020-01-01"}]
    good[0] = good[0] | {"valid_from": "2021-01-01"}
    plan = importing.plan_import(good, lookups(), iter(["a", "b"]).__next__)
    assert plan.errors == []
    assert [c.code for c in plan.commands] == ["D9", "K1"]  # the parent first, whatever the file order
    assert plan.commands[1].parent_id == plan.commands[0].agency_id and plan.commands[1].province == "01"


def test_campaign_steps_go_one_way_one_at_a_time():
    c = Campaign("c1", "province", "01", "opened", 1)
    assert advance(c, "sample_approved", Actor("province", "01")).previous_status == "opened"
    with pytest.raises(RegistryError, match="next step is sample_approved"):
        advance(c, "fieldwork_open", Actor("ministry"))
    with pytest.raises(Immutable):
        advance(Campaign("c1", "province", "01", "closed", 6), "opened", Actor("ministry"))
    with pytest.raises(NotAllowed):
        advance(c, "sample_approved", Actor("province", "79"))
    national = Campaign("n", "national", None, "fieldwork_closed", 4)
    assert advance(national, "scores_frozen", Actor("service")).status == "scores_frozen"
    with pytest.raises(NotAllowed):
        advance(national, "scores_frozen", Actor("province", "01"))
