"""Agency commands: load, decide, append the events and update the read model, in one transaction."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.envelope import Envelope
from sipas_events.store import EventStore, Metadata
from sipas_registry.adapters.tables import agencies
from sipas_registry.domain.agency import Agency, AlreadyExists, RegisterAgency, register, search_key


def stream_id(agency_id: str) -> str:
    return f"agency-{agency_id}"


async def find(conn: AsyncConnection, agency_id: str) -> Agency | None:
    row = (await conn.execute(select(agencies).where(agencies.c.agency_id == agency_id))).mappings().first()
    if row is None:
        return None
    return Agency(**{k: row[k] for k in ("agency_id", "code", "name", "level", "parent_id", "province",
                                         "valid_from", "valid_to", "version")})


async def handle_register_agency(conn: AsyncConnection, store: EventStore, cmd: RegisterAgency,
                                 meta: Metadata) -> Envelope:
    taken = (await conn.execute(select(agencies.c.agency_id).where(agencies.c.code == cmd.code))).scalar()
    if taken is not None:
        raise AlreadyExists(f"code {cmd.code} is already used by agency {taken}", "code")
    state = await find(conn, cmd.agency_id)
    parent = await find(conn, cmd.parent_id) if cmd.parent_id else None
    events = register(state, cmd, parent)
    envelopes = await store.append(conn, stream_id(cmd.agency_id), events, expected_version=0, meta=meta)
    try:
        async with conn.begin_nested():
            await _insert(conn, cmd, events[0].name)  # type: ignore[attr-defined]
    except IntegrityError:  # a concurrent registration took the code between our check and insert
        raise AlreadyExists(f"code {cmd.code} is already used", "code") from None
    return envelopes[0]


async def _insert(conn: AsyncConnection, cmd: RegisterAgency, name: str) -> None:
    await conn.execute(insert(agencies).values(
        agency_id=cmd.agency_id, code=cmd.code, name=name, name_search=search_key(name),
        level=cmd.level, parent_id=cmd.parent_id, province=cmd.province, valid_from=cmd.valid_from,
        valid_to=cmd.valid_to, version=1,
    ))
