"""Instrument and scheme versions: draft, redraft, publish; and the lookups campaigns need."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.catalogue.registry import InstrumentDefinition, SchemeDefinition
from sipas_events.envelope import Envelope
from sipas_events.store import EventStore, Metadata
from sipas_registry.adapters.tables import definitions
from sipas_registry.application.projector import record
from sipas_registry.domain import definitions as domain
from sipas_registry.domain.definitions import Kind, Version

MODELS: dict[str, type[InstrumentDefinition] | type[SchemeDefinition]] = {
    "instrument": InstrumentDefinition, "scheme": SchemeDefinition,
}


def stream_id(kind: Kind, ident: str) -> str:
    return f"{kind}-{ident}"


async def _lock(conn: AsyncConnection, kind: Kind, ident: str) -> None:
    await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": stream_id(kind, ident)})


async def versions(conn: AsyncConnection, kind: Kind, ident: str) -> list[Version]:
    stmt = select(definitions.c.version, definitions.c.status).where(
        definitions.c.kind == kind, definitions.c.def_id == ident)
    return [Version(v, s) for v, s in await conn.execute(stmt)]


async def get(conn: AsyncConnection, kind: Kind, ident: str, version: int) -> dict[str, Any] | None:
    stmt = select(definitions).where(definitions.c.kind == kind, definitions.c.def_id == ident,
                                     definitions.c.version == version)
    row = (await conn.execute(stmt)).mappings().first()
    return dict(row) if row else None


async def handle_draft(conn: AsyncConnection, store: EventStore, kind: Kind, ident: str,
                       definition: InstrumentDefinition | SchemeDefinition, meta: Metadata) -> Envelope:
    await _lock(conn, kind, ident)
    event = domain.draft(kind, ident, await versions(conn, kind, ident), definition)
    [env] = await record(conn, store, meta, [(stream_id(kind, ident), None, [event])])
    return env


async def handle_redraft(conn: AsyncConnection, store: EventStore, kind: Kind, ident: str, version: int,
                         definition: InstrumentDefinition | SchemeDefinition, meta: Metadata) -> Envelope:
    await _lock(conn, kind, ident)
    current = next((v for v in await versions(conn, kind, ident) if v.version == version), None)
    event = domain.redraft(kind, ident, current, definition)
    [env] = await record(conn, store, meta, [(stream_id(kind, ident), None, [event])])
    return env


async def handle_publish(conn: AsyncConnection, store: EventStore, kind: Kind, ident: str, version: int,
                         meta: Metadata) -> Envelope:
    await _lock(conn, kind, ident)
    row = await get(conn, kind, ident, version)
    current = Version(version, row["status"]) if row else None
    definition = MODELS[kind].model_validate(row["definition"]) if row else None
    event = domain.publish(kind, ident, current, definition)  # type: ignore[arg-type]
    [env] = await record(conn, store, meta, [(stream_id(kind, ident), None, [event])])
    return env
