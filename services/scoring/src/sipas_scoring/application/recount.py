"""Recount: a campaign's tallies computed from scratch from its counted ballots.

The incremental tallies (added and taken away event by event) must always equal this recount; the
``/tallies/verify`` endpoint compares the two and names every difference, and ``apply`` replaces the
tallies with the recount (an operator's repair, itself recorded in the log). The keys are exactly
those of :func:`domain.tallies.ballot_tallies` (tested against it).

Two paths, summed:

- **Codes** (every ballot the projection counted since migration 0005): one statement asks the server
  for each agency's ballots' answer codes (``domain.codes``) concatenated — a scan and one aggregate,
  which the server may run in parallel workers — and numpy counts each agency's block at once
  (:meth:`Codebook.tallies`). No JSON is parsed: ``width`` bytes a ballot cross the wire.
- **JSONB** (ballots without codes of this instrument version: counted before 0005, or carrying
  something the codebook cannot say): the statement below, which counts answers per (agency, item,
  value) — a key's text is built once per group, not once per answer — and ballots per *shape* (the
  factors, criteria and factor overall items it answered, and its expectations), since every other key
  of a ballot follows from its shape. It runs only when the first statement found such ballots.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.ids import new_id
from sipas_scoring.adapters import tally_rows
from sipas_scoring.adapters.tables import recounts_owed, tally_revisions
from sipas_scoring.application.definitions import CampaignBasis
from sipas_scoring.domain.codes import Codebook

_RECOUNT = text("""
WITH f AS (
    SELECT code, items FROM jsonb_to_recordset(CAST(:factors AS jsonb)) AS x(code text, items text[])
), b AS (
    SELECT agency_id, answers, jsonb_strip_nulls(answers) AS answered,
           COALESCE(expectations, '[]'::jsonb) AS expectations
    FROM sc_ballots WHERE campaign_id = :campaign_id AND status = 'accepted'
      AND (answer_codes IS NULL OR substring(answer_codes FROM 1 FOR 4) <> :tag)
), items AS (
    SELECT b.agency_id, kv.key AS item, kv.value, count(*) AS n
    FROM b, jsonb_each_text(b.answers) AS kv GROUP BY b.agency_id, kv.key, kv.value
), shapes AS (
    SELECT agency_id, ARRAY(SELECT f.code FROM f WHERE b.answered ?| f.items ORDER BY f.code) AS factors,
           answered ?| CAST(:criteria AS text[]) AS criteria,
           answered ?| CAST(:factor_overall AS text[]) AS factor_overall, expectations, count(*) AS n
    FROM b GROUP BY 1, 2, 3, 4, 5
)
SELECT agency_id, 'item:' || item || ':' || COALESCE(value, 'na') AS key, n AS count FROM items
UNION ALL
SELECT agency_id, key, CAST(sum(n) AS bigint) AS count FROM shapes, LATERAL (
    SELECT 'ballots'
    UNION ALL SELECT 'factor:' || unnest(factors)
    UNION ALL SELECT 'criteria' WHERE criteria
    UNION ALL SELECT 'factor-overall' WHERE factor_overall
    UNION ALL SELECT 'expect' WHERE jsonb_array_length(expectations) > 0
    UNION ALL SELECT 'expect:' || jsonb_array_elements_text(expectations)
) AS k(key) GROUP BY agency_id, key
""")


_CODES = text("""
SELECT agency_id,
       string_agg(answer_codes, ''::bytea) FILTER (WHERE substring(answer_codes FROM 1 FOR 4) = :tag) AS codes,
       count(*) FILTER (WHERE answer_codes IS NULL OR substring(answer_codes FROM 1 FOR 4) <> :tag) AS other
FROM sc_ballots WHERE campaign_id = :campaign_id AND status = 'accepted' GROUP BY agency_id
""")

# Both statements aggregate in memory: the codes per agency (``width`` bytes a ballot: ~330 MB for
# 10,000,000 ballots) and, on the JSONB path, ~170 groups an agency (28 items x 6 values), which past a
# few hundred agencies outgrow the default 4 MB and spill to disk (1.7 GiB of temporary files at
# 1,000,000 ballots). Enough memory for the recount's transaction only (SET LOCAL; bench notes in
# docs/performance-scoring.md).
_RECOUNT_WORK_MEM = text("SELECT set_config('work_mem', '256MB', true)")


async def recount(conn: AsyncConnection, basis: CampaignBasis) -> dict[tuple[str, str], int]:
    instrument = basis.instrument
    book = Codebook.of(instrument)
    await conn.execute(_RECOUNT_WORK_MEM)
    counted: dict[tuple[str, str], int] = {}
    without_codes = 0
    for agency_id, codes, other in await conn.execute(_CODES, {"campaign_id": basis.campaign_id, "tag": book.tag}):
        without_codes += int(other)
        if codes:
            for key, count in book.tallies(book.matrix(codes)).items():
                counted[(agency_id, key)] = count
    if without_codes:
        rows = await conn.execute(_RECOUNT, {
            "campaign_id": basis.campaign_id, "tag": book.tag,
            "factors": json.dumps([{"code": f.code, "items": list(f.items)} for f in instrument.factors]),
            "criteria": list(instrument.criteria),
            "factor_overall": [f.overall_item for f in instrument.factors if f.overall_item],
        })
        for agency_id, key, count in rows:
            counted[(agency_id, key)] = counted.get((agency_id, key), 0) + int(count)
    return counted


async def kept(conn: AsyncConnection, campaign_id: str) -> dict[tuple[str, str], int]:
    return await tally_rows.read_pairs(conn, campaign_id)


async def verify(conn: AsyncConnection, basis: CampaignBasis, apply: bool = False) -> dict[str, Any]:
    """Compare the incremental tallies with a recount; with ``apply``, replace them by the recount."""
    fresh, current = await recount(conn, basis), await kept(conn, basis.campaign_id)
    differences = [{"agency_id": a, "key": k, "kept": current.get((a, k), 0), "recount": fresh.get((a, k), 0)}
                   for a, k in sorted(set(fresh) | set(current)) if fresh.get((a, k), 0) != current.get((a, k), 0)]
    if apply and differences:
        await replace(conn, basis.campaign_id, fresh)
    return {"campaign_id": basis.campaign_id, "keys": len(fresh), "ballots": sum(
        c for (_, k), c in fresh.items() if k == "ballots"), "differences": differences[:1000],
        "difference_count": len(differences), "applied": bool(apply and differences)}


async def replace(conn: AsyncConnection, campaign_id: str, counted: dict[tuple[str, str], int]) -> None:
    """The campaign's tallies replaced by ``counted`` (a recount): nothing is owed any more, and the campaign's
    tally revision moves (the figures then read every tally again, not only the changed agencies')."""
    await tally_rows.replace(conn, campaign_id, counted)
    await conn.execute(delete(recounts_owed).where(recounts_owed.c.campaign_id == campaign_id))
    stmt = insert(tally_revisions).values(campaign_id=campaign_id, revision=str(new_id()))
    await conn.execute(stmt.on_conflict_do_update(index_elements=["campaign_id"],
                                                  set_={"revision": stmt.excluded.revision}))
