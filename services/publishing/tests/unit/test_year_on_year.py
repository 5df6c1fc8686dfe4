"""Year on year in a release: scoring's comparison cut to what the release shows — its own figure for
this year, the earlier year restated on today's provinces, nothing a suppressed cell would give away."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sipas_publishing.domain.comparison import for_release, restated
from sipas_publishing.domain.errors import FiguresMismatch, ReleaseConflict


def province(code: str, value: str | None, n: int, suppressed: str | None = None) -> dict[str, Any]:
    return {"level": "province", "id": code, "province": code, "suppressed": suppressed,
            "overall": {"value": value, "exact": None if value is None else f"{value}/1", "n": n}}


DOCUMENT = {"units": [
    {"level": "national", "id": "VN", "overall": {"value": "70.00", "n": 200}},
    province("01", "72.50", 90), province("79", "68.00", 80),
    province("48", None, 12, "insufficient_sample"), province("92", None, 40, "complementary"),
]}


def row(code: str, now: str | None, then: str | None, sources: list[str], change: str | None) -> dict[str, Any]:
    return {"level": "province", "id": code, "province": code, "name": f"Tỉnh {code}",
            "current": {"value": now, "exact": None if now is None else f"{now}/1", "n": 90},
            "earlier": {"value": then, "exact": None, "n": 80, "restated": sources != [code], "from": sources,
                        "split": False},
            "change": change}


COMPARISON = {"campaign_id": "c26", "against": "c24", "years": [2024, 2026], "note": "restated", "units": [
    row("01", "72.50", "70.00", ["01"], "2.50"), row("79", "68.00", "66.00", ["74", "77", "79"], "2.00"),
    row("48", None, None, ["48"], None), row("92", "61.00", "60.00", ["92", "93"], "1.00"),
]}


def test_the_earlier_year_is_restated_and_this_year_is_the_releases_own_figure() -> None:
    shown = {u["province"]: u for u in for_release(COMPARISON, DOCUMENT, None)["units"]}
    assert shown["79"]["earlier"]["restated"] and shown["79"]["earlier"]["from"] == ["74", "77", "79"]
    assert not shown["01"]["earlier"]["restated"]
    assert shown["79"]["current"] == {"value": "68.00", "exact": "68.00/1", "n": 80, "suppressed": None}
    assert shown["79"]["change"] == "2.00" and restated(for_release(COMPARISON, DOCUMENT, None))


def test_a_cell_the_release_withholds_stays_withheld() -> None:
    shown = {u["province"]: u for u in for_release(COMPARISON, DOCUMENT, None)["units"]}
    # Scoring's live comparison has 61.00 for 92, but the release hides it to protect another cell.
    assert shown["92"]["current"] == {"value": None, "exact": None, "n": 40, "suppressed": "complementary"}
    assert shown["92"]["change"] is None and shown["92"]["earlier"]["value"] == "60.00"
    assert shown["48"]["current"]["suppressed"] == "insufficient_sample" and shown["48"]["change"] is None


def test_a_province_with_no_earlier_ballots_is_not_flagged_restated() -> None:
    nothing = copy.deepcopy(COMPARISON)
    nothing["units"][2]["earlier"] |= {"n": 0, "restated": True, "from": []}  # as scoring reports it
    shown = {u["province"]: u for u in for_release(nothing, DOCUMENT, None)["units"]}
    assert shown["48"]["earlier"]["restated"] is False and shown["48"]["earlier"]["value"] is None


def test_a_provincial_release_compares_its_own_province_only() -> None:
    assert [u["province"] for u in for_release(COMPARISON, DOCUMENT, "79")["units"]] == ["79"]


@pytest.mark.parametrize(("code", "field", "value"), [("79", "value", "68.01"), ("79", "exact", "6801/100"),
                                                      ("01", "value", None)])
def test_tallies_that_moved_since_the_snapshot_are_refused(code: str, field: str, value: Any) -> None:
    moved = copy.deepcopy(COMPARISON)
    next(u for u in moved["units"] if u["province"] == code)["current"][field] = value
    with pytest.raises(FiguresMismatch, match="new snapshot"):
        for_release(moved, DOCUMENT, None)


def test_a_province_with_figures_now_but_none_in_the_snapshot_is_refused() -> None:
    moved = copy.deepcopy(COMPARISON)
    moved["units"].append(row("96", "50.00", None, ["96"], None))
    with pytest.raises(FiguresMismatch, match="96"):
        for_release(moved, DOCUMENT, None)


def test_the_other_campaign_must_be_earlier() -> None:
    with pytest.raises(ReleaseConflict, match="not earlier"):
        for_release(COMPARISON | {"years": [2026, 2026]}, DOCUMENT, None)
