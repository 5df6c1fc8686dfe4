"""Year on year in a release: scoring's comparison of the campaign with an earlier one restated on
today's provinces (a province merged on 2025-07-01 gets its predecessors' pooled tallies), cut down
to what the release itself may show.

The current year's side is the release's own figure, never a second number for the same province:
scoring computes its comparison from live tallies, so where the two differ the tallies have moved
since the snapshot and the comparison is refused (take a new snapshot). Where the release withholds
a province (too few ballots, or hidden to protect another cell), the comparison withholds its
current value and the change too.
"""

from __future__ import annotations

from typing import Any

from sipas_publishing.domain.errors import FiguresMismatch, ReleaseConflict


def _provinces(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {u.get("province") or u["id"]: u for u in document.get("units", []) if u.get("level") == "province"}


def _current(unit: dict[str, Any] | None) -> dict[str, Any]:
    overall = (unit or {}).get("overall") or {}
    suppressed = (unit or {}).get("suppressed")
    value = None if suppressed else overall.get("value")
    return {"value": value, "exact": None if value is None else overall.get("exact"), "n": overall.get("n", 0),
            "suppressed": suppressed}


def _moved(current: dict[str, Any], theirs: dict[str, Any]) -> bool:
    if current["suppressed"]:
        return False  # withheld in the release: nothing of scoring's current side is shown
    if current["value"] != theirs.get("value"):
        return True
    return None not in (current["exact"], theirs.get("exact")) and current["exact"] != theirs.get("exact")


def for_release(comparison: dict[str, Any], document: dict[str, Any], province: str | None) -> dict[str, Any]:
    """The comparison as the release will carry (and sign) it; raises when it cannot be shown."""
    earlier_year, year = comparison["years"]
    if earlier_year >= year:
        raise ReleaseConflict(f"{comparison['against']} ({earlier_year}) is not earlier than "
                              f"{comparison['campaign_id']} ({year})")
    shown = _provinces(document)
    units = []
    for unit in comparison["units"]:
        code = unit.get("province") or unit["id"]
        if province is not None and code != province:
            continue  # a provincial release compares its own province only
        current, theirs = _current(shown.get(code)), unit["current"]
        if _moved(current, theirs):
            raise FiguresMismatch(
                f"scoring's comparison gives province {code} {theirs.get('value')} for {year} but the snapshot "
                f"{current['value']}: its tallies moved since the snapshot was taken; take a new snapshot")
        earlier = {k: unit["earlier"].get(k) for k in ("value", "exact", "n", "restated", "from", "split")}
        # Scoring flags a province with no earlier ballots at all as restated (from nothing): nothing moved.
        earlier["restated"] = bool(earlier["restated"] and earlier["from"])
        change = unit.get("change") if current["value"] is not None and earlier["value"] is not None else None
        units.append({"province": code, "name": unit.get("name"), "current": current, "earlier": earlier,
                      "change": change})
    return {"campaign_id": comparison["campaign_id"], "against": comparison["against"],
            "years": [earlier_year, year], "note": comparison.get("note"), "units": units}


def restated(comparison: dict[str, Any] | None) -> bool:
    return any(u["earlier"]["restated"] for u in (comparison or {}).get("units", []))
