"""Field work: assign the live sample to enumerators (or post offices) and print their lists.

A list carries names and contacts only for a reader allowed to see them, and every contact printed
is logged like any other read (purpose ``field list``).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_sampling.adapters.keys import KeySource, Sealer
from sipas_sampling.adapters.tables import contact_reads, draws, sample_units
from sipas_sampling.application.campaign_keys import data_key
from sipas_sampling.application.contacts import CONTACT, UNITS_WITH_CONTACTS
from sipas_sampling.domain.assignment import assign


async def assign_draw(conn: AsyncConnection, draw_id: str, enumerators: list[str], by: str) -> dict[str, int]:
    su = sample_units.c
    area = su.agency_code if by == "agency" else su.stratum
    rows = (await conn.execute(select(su.unit_id, area.label("area")).where(
        su.draw_id == draw_id, su.status == "active"))).all()
    groups: dict[str, list[str]] = defaultdict(list)
    for unit_id, key in rows:
        groups[key].append(unit_id)
    plan = assign(groups, enumerators)
    for enumerator in enumerators:
        mine = [u for u, e in plan.items() if e == enumerator]
        if mine:
            await conn.execute(update(sample_units).where(su.draw_id == draw_id, su.unit_id.in_(mine))
                               .values(assigned_to=enumerator))
    counts: dict[str, int] = defaultdict(int)
    for e in plan.values():
        counts[e] += 1
    return {e: counts[e] for e in enumerators}


async def field_list(conn: AsyncConnection, keys: KeySource, draw_id: str, enumerator: str | None,
                     with_contacts: bool, actor: str) -> list[dict[str, Any]]:
    su = sample_units.c
    stmt = (select(su.unit_id, su.agency_code, su.stratum, su.rank, su.assigned_to, su.dossier_id, CONTACT,
                   draws.c.campaign_id).select_from(UNITS_WITH_CONTACTS)
            .where(su.draw_id == draw_id, su.status == "active")
            .order_by(su.assigned_to, su.agency_code, su.stratum, su.rank))
    if enumerator is not None:
        stmt = stmt.where(su.assigned_to == enumerator)
    rows = (await conn.execute(stmt)).all()
    sealer = Sealer(await data_key(conn, keys, rows[0].campaign_id), rows[0].campaign_id) if rows and with_contacts \
        else None
    out = []
    now = dt.datetime.now(dt.UTC)
    for r in rows:
        item: dict[str, Any] = {"unit_id": r.unit_id, "agency_code": r.agency_code, "stratum": r.stratum,
                                "rank": r.rank, "assigned_to": r.assigned_to}
        if sealer is not None and r.contact is not None:
            contact = sealer.open(r.dossier_id, bytes(r.contact))
            item |= {"name": contact.name, "phone": contact.phone or "", "address": contact.address or ""}
            await conn.execute(insert(contact_reads).values(campaign_id=r.campaign_id, unit_id=r.unit_id, actor=actor,
                                                            purpose="field list", at=now))
        out.append(item)
    return out
