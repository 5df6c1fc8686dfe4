"""The registry's tables as a fold of its own events: one function per event, run in the command's transaction.

``record`` appends events to their streams and applies each to the tables, so the state a command
decides on is always exactly what the event store says.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.catalogue.base import Event
from sipas_events.catalogue.registry import (
    AgencyDissolved,
    AgencyImportCompleted,
    AgencyMerged,
    AgencyRegistered,
    AgencyRenamed,
    AgencyReparented,
    AgencySplit,
    CampaignOpened,
    CampaignStatusChanged,
    InstrumentDrafted,
    InstrumentPublished,
    SchemeDrafted,
    SchemePublished,
)
from sipas_events.envelope import Envelope
from sipas_events.store import EventStore, Metadata
from sipas_registry.adapters.tables import campaign_steps, campaigns, definitions, unit_history, unit_links, units
from sipas_registry.domain.units import search_key

Apply = Callable[[AsyncConnection, Any, Envelope], Awaitable[None]]
_APPLY: dict[type[Event], Apply] = {}
DAY = dt.timedelta(days=1)


def applies(kind: type[Event]) -> Callable[[Apply], Apply]:
    def wrap(fn: Apply) -> Apply:
        _APPLY[kind] = fn
        return fn

    return wrap


async def record(conn: AsyncConnection, store: EventStore, meta: Metadata,
                 batches: Sequence[tuple[str, int | None, Sequence[Event]]]) -> list[Envelope]:
    """Append each (stream, expected version, events) batch and apply every event, in order."""
    out: list[Envelope] = []
    for stream_id, expected, events in batches:
        envelopes = await store.append(conn, stream_id, events, expected_version=expected, meta=meta)
        for event, env in zip(events, envelopes, strict=True):
            await _APPLY[type(event)](conn, event, env)
        out.extend(envelopes)
    return out


async def _bump(conn: AsyncConnection, agency_id: str, env: Envelope) -> None:
    if env.subject == f"agency-{agency_id}":
        await conn.execute(update(units).where(units.c.agency_id == agency_id).values(version=env.sequence))


async def _end(conn: AsyncConnection, agency_id: str, effective: dt.date) -> None:
    await conn.execute(update(units).where(units.c.agency_id == agency_id).values(valid_to=effective - DAY))


@applies(AgencyRegistered)
async def on_agency_registered(conn: AsyncConnection, e: AgencyRegistered, env: Envelope) -> None:
    await registered_many(conn, [e], [env])


async def registered_many(conn: AsyncConnection, events: Sequence[AgencyRegistered],
                          envelopes: Sequence[Envelope]) -> None:
    """Apply units' registrations, in order: one statement per table however many there are."""
    await conn.execute(insert(units), [dict(
        agency_id=e.agency_id, code=e.code, name=e.name, name_search=search_key(e.name), level=e.level,
        parent_id=e.parent_id, province=e.province, valid_from=e.valid_from, valid_to=e.valid_to,
        legal_basis=e.legal_basis, version=env.sequence) for e, env in zip(events, envelopes, strict=True)])
    await conn.execute(insert(unit_history), [dict(
        agency_id=e.agency_id, effective_date=e.valid_from, name=e.name, parent_id=e.parent_id,
        legal_basis=e.legal_basis) for e in events])


async def _history(conn: AsyncConnection, agency_id: str, effective: dt.date, legal_basis: str,
                   **change: Any) -> None:
    """A new history row from the effective date, carrying forward what did not change."""
    from sqlalchemy import select

    current = (await conn.execute(select(units.c.name, units.c.parent_id).where(units.c.agency_id == agency_id))).one()
    values = {"name": current.name, "parent_id": current.parent_id} | change
    stmt = pg_insert(unit_history).values(agency_id=agency_id, effective_date=effective, legal_basis=legal_basis,
                                          **values)
    await conn.execute(stmt.on_conflict_do_update(index_elements=["agency_id", "effective_date"],
                                                  set_={**values, "legal_basis": legal_basis}))
    extra = {"name_search": search_key(values["name"])} if "name" in change else {}
    await conn.execute(update(units).where(units.c.agency_id == agency_id).values(**change, **extra))


@applies(AgencyRenamed)
async def on_agency_renamed(conn: AsyncConnection, e: AgencyRenamed, env: Envelope) -> None:
    await _history(conn, e.agency_id, e.effective_date, e.legal_basis, name=e.name)
    await _bump(conn, e.agency_id, env)


@applies(AgencyReparented)
async def on_agency_reparented(conn: AsyncConnection, e: AgencyReparented, env: Envelope) -> None:
    await _history(conn, e.agency_id, e.effective_date, e.legal_basis, parent_id=e.parent_id)
    await _bump(conn, e.agency_id, env)


async def _links(conn: AsyncConnection, pairs: Sequence[tuple[str, str]], effective: dt.date, kind: str,
                 legal_basis: str) -> None:
    rows = [{"predecessor_id": p, "successor_id": s, "effective_date": effective, "kind": kind,
             "legal_basis": legal_basis} for p, s in pairs]
    await conn.execute(pg_insert(unit_links).values(rows).on_conflict_do_nothing())


@applies(AgencyMerged)
async def on_agency_merged(conn: AsyncConnection, e: AgencyMerged, env: Envelope) -> None:
    for predecessor in e.predecessor_ids:
        await _end(conn, predecessor, e.effective_date)
    await _links(conn, [(p, e.successor_id) for p in e.predecessor_ids], e.effective_date, "merge", e.legal_basis)
    await _bump(conn, e.successor_id, env)


@applies(AgencySplit)
async def on_agency_split(conn: AsyncConnection, e: AgencySplit, env: Envelope) -> None:
    await _end(conn, e.predecessor_id, e.effective_date)
    await _links(conn, [(e.predecessor_id, s) for s in e.successor_ids], e.effective_date, "split", e.legal_basis)
    await _bump(conn, e.predecessor_id, env)


@applies(AgencyDissolved)
async def on_agency_dissolved(conn: AsyncConnection, e: AgencyDissolved, env: Envelope) -> None:
    await _end(conn, e.agency_id, e.effective_date)
    await _bump(conn, e.agency_id, env)


@applies(AgencyImportCompleted)
async def on_import_completed(conn: AsyncConnection, e: AgencyImportCompleted, env: Envelope) -> None:
    """The import row itself is written by the import handler (it also records rejected files)."""


async def _definition(conn: AsyncConnection, kind: str, ident: str, version: int, status: str,
                      definition: Any, env: Envelope) -> None:
    values = {"status": status, "title": definition.title, "definition": definition.model_dump(mode="json"),
              "updated_at": env.time}
    stmt = pg_insert(definitions).values(kind=kind, def_id=ident, version=version, **values)
    await conn.execute(stmt.on_conflict_do_update(index_elements=["kind", "def_id", "version"], set_=values))


@applies(InstrumentDrafted)
async def on_instrument_drafted(conn: AsyncConnection, e: InstrumentDrafted, env: Envelope) -> None:
    await _definition(conn, "instrument", e.instrument_id, e.instrument_version, "draft", e.definition, env)


@applies(InstrumentPublished)
async def on_instrument_published(conn: AsyncConnection, e: InstrumentPublished, env: Envelope) -> None:
    await _definition(conn, "instrument", e.instrument_id, e.instrument_version, "published", e.definition, env)


@applies(SchemeDrafted)
async def on_scheme_drafted(conn: AsyncConnection, e: SchemeDrafted, env: Envelope) -> None:
    await _definition(conn, "scheme", e.scheme_id, e.scheme_version, "draft", e.definition, env)


@applies(SchemePublished)
async def on_scheme_published(conn: AsyncConnection, e: SchemePublished, env: Envelope) -> None:
    await _definition(conn, "scheme", e.scheme_id, e.scheme_version, "published", e.definition, env)


@applies(CampaignOpened)
async def on_campaign_opened(conn: AsyncConnection, e: CampaignOpened, env: Envelope) -> None:
    await conn.execute(insert(campaigns).values(
        campaign_id=e.campaign_id, name=e.name, year=e.year, scope=e.scope, province=e.province, status="opened",
        definition=e.payload(), version=env.sequence, opened_at=env.time,
    ))
    await conn.execute(insert(campaign_steps).values(campaign_id=e.campaign_id, status="opened",
                                                     actor=env.actor or "", at=env.time, note=None))


@applies(CampaignStatusChanged)
async def on_campaign_status_changed(conn: AsyncConnection, e: CampaignStatusChanged, env: Envelope) -> None:
    await conn.execute(update(campaigns).where(campaigns.c.campaign_id == e.campaign_id)
                       .values(status=e.status, version=env.sequence))
    await conn.execute(insert(campaign_steps).values(campaign_id=e.campaign_id, status=e.status,
                                                     actor=env.actor or "", at=env.time, note=e.note))
