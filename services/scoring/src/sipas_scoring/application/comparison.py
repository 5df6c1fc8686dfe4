"""Comparisons across years: an earlier campaign restated on today's provinces.

Tallies are sums over ballots, so an earlier province's ballots move to today's province by adding
tallies: a merged province (e.g. 63 → 34 on 2025-07-01, Resolution 202/2025/QH15) gets the sum of its
predecessors' tallies, scored by the earlier campaign's own instrument and scheme. The registry's
crosswalk (``ref_agency_links``) decides where each earlier province went; a province split between
several successors is restated whole onto each and flagged ``split``. A figure that needed any
moving is flagged ``restated``.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_scoring.adapters import tally_rows
from sipas_scoring.adapters.tables import reference
from sipas_scoring.application.definitions import CampaignBasis, definitions
from sipas_scoring.application.figures import exact
from sipas_scoring.domain.errors import ScoringError
from sipas_scoring.domain.scheme import Scheme
from sipas_scoring.domain.tallies import Tallies, points_scores, share_scores, sum_tallies


async def _province_tallies(conn: AsyncConnection, campaign_id: str) -> dict[str, Counter[str]]:
    by_agency = await tally_rows.read(conn, campaign_id)
    a = reference.agencies.c
    province = dict((await conn.execute(select(a.agency_id, a.province)
                                        .where(a.agency_id.in_(sorted(by_agency))))).all())
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for agency_id, counts in by_agency.items():
        out[province.get(agency_id) or "--"].update(counts)
    return out


def _value(basis: CampaignBasis, counts: Counter[str]) -> tuple[Any, int]:
    t = Tallies(counts)
    if basis.scheme.kind == "points":
        scores = points_scores(basis.instrument, basis.scheme, t)
        return scores.tally.percent, t["criteria"]
    if basis.scheme.kind == "share-satisfied":
        shares = share_scores(basis.instrument, basis.scheme, t)
        return shares.overall.value, shares.overall.n
    raise ScoringError("online-766 campaigns are compared by their dossier shares, not restated tallies")


async def _successors(conn: AsyncConnection, year: int) -> dict[str, tuple[list[str], bool]]:
    """Earlier province code → (today's province codes, split?), by following the crosswalk."""
    a, links = reference.agencies, reference.links
    provinces = [dict(r) for r in (await conn.execute(select(a).where(a.c.level == "province"))).mappings()]
    by_id = {p["agency_id"]: p for p in provinces}
    onward: dict[str, list[str]] = defaultdict(list)
    for r in await conn.execute(select(links.c.predecessor_id, links.c.successor_id)):
        onward[r.predecessor_id].append(r.successor_id)
    start, end = dt.date(year, 1, 1), dt.date(year, 12, 31)
    out: dict[str, tuple[list[str], bool]] = {}
    for p in provinces:
        if p["valid_from"] > end or (p["valid_to"] is not None and p["valid_to"] < start):
            continue  # not a province of that year
        frontier, seen, final, split = [p["agency_id"]], set(), set(), False
        while frontier:
            current = frontier.pop()
            if current in seen:
                continue
            seen.add(current)
            nexts = [s for s in onward.get(current, []) if s in by_id]
            split = split or len(nexts) > 1
            if nexts:
                frontier.extend(nexts)
            elif by_id[current]["valid_to"] is None:
                final.add(by_id[current]["code"])
        out[p["code"]] = (sorted(final), split)
    return out


async def compare(conn: AsyncConnection, campaign_id: str, earlier_id: str) -> dict[str, Any]:
    now_basis = await definitions.basis(conn, campaign_id)
    then_basis = await definitions.basis(conn, earlier_id)
    current = await _province_tallies(conn, campaign_id)
    earlier = await _province_tallies(conn, earlier_id)
    where = await _successors(conn, then_basis.year)
    moved: dict[str, list[Counter[str]]] = defaultdict(list)
    sources: dict[str, list[str]] = defaultdict(list)
    split_into: set[str] = set()
    for code, counts in earlier.items():
        targets, split = where.get(code, ([code], False))
        for target in targets or [code]:
            moved[target].append(counts)
            sources[target].append(code)
            if split:
                split_into.add(target)

    def present(scheme: Scheme, value: Any) -> str | None:
        return None if value is None else str(scheme.rounding.present(value))

    names = {r.code: r.name for r in await conn.execute(
        select(reference.agencies.c.code, reference.agencies.c.name).where(
            reference.agencies.c.level == "province", reference.agencies.c.valid_to.is_(None)))}
    units = []
    for code in sorted(set(current) | set(moved)):
        now_value, now_n = _value(now_basis, current.get(code, Counter()))
        then_value, then_n = _value(then_basis, sum_tallies(moved.get(code, [])))
        restated = bool(sources.get(code)) and sorted(sources[code]) != [code]  # nothing earlier: not restated
        small = now_basis.scheme.small_cell_n
        if now_n < small:  # never show a small cell, here either
            now_value = None
        if then_n < then_basis.scheme.small_cell_n:
            then_value = None
        own_n = [_value(then_basis, earlier[source])[1] for source in sources.get(code, []) if source in earlier]
        small_then = then_basis.scheme.small_cell_n
        if any(n < small_then for n in own_n) and any(n >= small_then for n in own_n):
            # A predecessor hidden in its own year, merged with one that was shown: the restated sum minus
            # the shown one would reveal it. Withhold the restated figure.
            then_value = None
        change = None if now_value is None or then_value is None else now_value - then_value
        units.append({
            "level": "province", "id": code, "province": code, "name": names.get(code),
            "current": {"value": present(now_basis.scheme, now_value), "exact": exact(now_value), "n": now_n},
            "earlier": {"value": present(then_basis.scheme, then_value), "exact": exact(then_value), "n": then_n,
                        "restated": restated, "from": sorted(sources.get(code, [])), "split": code in split_into},
            "change": present(now_basis.scheme, change),
        })
    return {"campaign_id": campaign_id, "against": earlier_id, "years": [then_basis.year, now_basis.year],
            "note": "earlier figures restated on today's provinces by adding their predecessors' tallies; "
                    "a figure resting on fewer ballots than the scheme's small_cell_n is withheld (value null)",
            "units": units}
