"""Recount: a campaign's tallies computed from scratch from its counted ballots, in one SQL statement.

The incremental tallies (added and taken away event by event) must always equal this recount; the
``/tallies/verify`` endpoint compares the two and names every difference, and ``apply`` replaces the
tallies with the recount (an operator's repair, itself recorded in the log). The keys are exactly
those of :func:`domain.tallies.ballot_tallies` (tested against it).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_scoring.adapters.tables import tallies
from sipas_scoring.application.definitions import CampaignBasis

_RECOUNT = text("""
WITH b AS (
    SELECT agency_id, answers, expectations,
           ARRAY(SELECT key FROM jsonb_each(answers) WHERE value <> 'null'::jsonb) AS answered
    FROM sc_ballots WHERE campaign_id = :campaign_id AND status = 'accepted'
), f AS (
    SELECT code, items FROM jsonb_to_recordset(CAST(:factors AS jsonb)) AS x(code text, items text[])
), keys AS (
    SELECT agency_id, 'ballots' AS key FROM b
    UNION ALL
    SELECT b.agency_id, 'item:' || kv.key || ':' || CASE WHEN kv.value = 'null'::jsonb THEN 'na' ELSE kv.value::text END
    FROM b, jsonb_each(b.answers) AS kv
    UNION ALL
    SELECT b.agency_id, 'factor:' || f.code FROM b JOIN f ON b.answered && f.items
    UNION ALL
    SELECT agency_id, 'criteria' FROM b WHERE answered && CAST(:criteria AS text[])
    UNION ALL
    SELECT agency_id, 'factor-overall' FROM b WHERE answered && CAST(:factor_overall AS text[])
    UNION ALL
    SELECT agency_id, 'expect' FROM b WHERE jsonb_array_length(COALESCE(expectations, '[]'::jsonb)) > 0
    UNION ALL
    SELECT b.agency_id, 'expect:' || e.option
    FROM b, jsonb_array_elements_text(COALESCE(b.expectations, '[]'::jsonb)) AS e(option)
)
SELECT agency_id, key, count(*) AS count FROM keys GROUP BY agency_id, key
""")


async def recount(conn: AsyncConnection, basis: CampaignBasis) -> dict[tuple[str, str], int]:
    instrument = basis.instrument
    rows = await conn.execute(_RECOUNT, {
        "campaign_id": basis.campaign_id,
        "factors": json.dumps([{"code": f.code, "items": list(f.items)} for f in instrument.factors]),
        "criteria": list(instrument.criteria),
        "factor_overall": [f.overall_item for f in instrument.factors if f.overall_item],
    })
    return {(agency_id, key): int(count) for agency_id, key, count in rows}


async def kept(conn: AsyncConnection, campaign_id: str) -> dict[tuple[str, str], int]:
    rows = await conn.execute(text("SELECT agency_id, key, count FROM sc_tallies WHERE campaign_id = :c"),
                              {"c": campaign_id})
    return {(agency_id, key): int(count) for agency_id, key, count in rows}


async def verify(conn: AsyncConnection, basis: CampaignBasis, apply: bool = False) -> dict[str, Any]:
    """Compare the incremental tallies with a recount; with ``apply``, replace them by the recount."""
    fresh, current = await recount(conn, basis), await kept(conn, basis.campaign_id)
    differences = [{"agency_id": a, "key": k, "kept": current.get((a, k), 0), "recount": fresh.get((a, k), 0)}
                   for a, k in sorted(set(fresh) | set(current)) if fresh.get((a, k), 0) != current.get((a, k), 0)]
    if apply and differences:
        await conn.execute(delete(tallies).where(tallies.c.campaign_id == basis.campaign_id))
        rows = [{"campaign_id": basis.campaign_id, "agency_id": a, "key": k, "count": c}
                for (a, k), c in sorted(fresh.items())]
        for start in range(0, len(rows), 5000):
            await conn.execute(tallies.insert(), rows[start:start + 5000])
    return {"campaign_id": basis.campaign_id, "keys": len(fresh), "ballots": sum(
        c for (_, k), c in fresh.items() if k == "ballots"), "differences": differences[:1000],
        "difference_count": len(differences), "applied": bool(apply and differences)}
