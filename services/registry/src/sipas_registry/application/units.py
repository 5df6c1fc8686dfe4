"""Unit commands and queries: load, decide, record — all in the caller's transaction.

Every command that can change codes, validity or links first takes one transaction-scoped advisory
lock, so two reorganisations can never both see a unit as open (registry writes are rare; a single
lock is simpler and safer than per-unit ones).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select, text, true
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.envelope import Envelope
from sipas_events.store import EventStore, Metadata, StreamAppend
from sipas_registry.adapters.tables import unit_history, unit_links, units
from sipas_registry.application.projector import record, registered_many
from sipas_registry.domain import units as domain
from sipas_registry.domain.errors import NotFound
from sipas_registry.domain.units import RegisterUnit, Unit

UNITS_LOCK = 0x5195A5_0001
FIELDS = ("agency_id", "code", "name", "level", "parent_id", "province", "valid_from", "valid_to", "version")


def stream_id(agency_id: str) -> str:
    return f"agency-{agency_id}"


async def lock_units(conn: AsyncConnection) -> None:
    await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": UNITS_LOCK})


def _unit(row: object) -> Unit:
    return Unit(**{k: getattr(row, k) for k in FIELDS})


async def find(conn: AsyncConnection, agency_id: str | None) -> Unit | None:
    if agency_id is None:
        return None
    row = (await conn.execute(select(units).where(units.c.agency_id == agency_id))).first()
    return _unit(row) if row else None


Visible = Callable[[Unit], bool]
"""Whether the caller may see a unit; a parent they may not see is treated as one that does not exist."""


async def find_parent(conn: AsyncConnection, parent_id: str | None, visible: Visible | None) -> Unit | None:
    """The parent a command names, or None when there is none the caller may see: an error about a unit
    of another province must say no more than one about an unknown id (not its name, level or dates)."""
    parent = await find(conn, parent_id)
    return parent if parent is None or visible is None or visible(parent) else None


async def require(conn: AsyncConnection, agency_id: str, field: str) -> Unit:
    unit = await find(conn, agency_id)
    if unit is None:
        raise NotFound(f"no unit {agency_id} in the registry", field)
    return unit


async def with_code(conn: AsyncConnection, code: str) -> list[Unit]:
    return [_unit(r) for r in await conn.execute(select(units).where(units.c.code == code))]


async def ancestors(conn: AsyncConnection, agency_id: str | None) -> list[str]:
    seen: list[str] = []
    while agency_id is not None and agency_id not in seen:
        seen.append(agency_id)
        agency_id = (await conn.execute(select(units.c.parent_id).where(units.c.agency_id == agency_id))).scalar()
    return seen


async def handle_register(conn: AsyncConnection, store: EventStore, cmd: RegisterUnit, meta: Metadata,
                          visible: Visible | None = None) -> Envelope:
    await lock_units(conn)
    event = domain.register(cmd, existing=await find(conn, cmd.agency_id),
                            parent=await find_parent(conn, cmd.parent_id, visible),
                            clashes=await with_code(conn, cmd.code))
    [env] = await record(conn, store, meta, [(stream_id(cmd.agency_id), 0, [event])])
    return env


async def handle_register_many(conn: AsyncConnection, store: EventStore, cmds: Sequence[RegisterUnit],
                               meta: Metadata) -> list[Envelope]:
    """Commands already validated together (an import): each decided against what precedes it — the units
    stored (the parents named and the units sharing a code, read in two statements) and the import's earlier
    units — then appended in one go and applied as one insert per table (a province's file of thousands of
    units, command by command, took five statements a unit)."""
    await lock_units(conn)
    by_id = {r.agency_id: _unit(r) for r in await conn.execute(select(units).where(
        units.c.agency_id == func.any(sorted({c.parent_id for c in cmds if c.parent_id}))))}
    by_code: dict[str, list[Unit]] = defaultdict(list)
    for r in await conn.execute(select(units).where(units.c.code == func.any(sorted({c.code for c in cmds})))):
        by_code[r.code].append(_unit(r))
    events = []
    for cmd in cmds:
        event = domain.register(cmd, existing=by_id.get(cmd.agency_id),
                                parent=by_id.get(cmd.parent_id) if cmd.parent_id else None,
                                clashes=by_code[cmd.code])
        by_id[cmd.agency_id] = unit = Unit(event.agency_id, event.code, event.name, event.level, event.parent_id,
                                           event.province, event.valid_from, event.valid_to, 1)
        by_code[cmd.code].append(unit)
        events.append(event)
    envelopes = await store.append_many(conn, [StreamAppend(stream_id(e.agency_id), [e], 0) for e in events],
                                        meta=meta)
    await registered_many(conn, events, envelopes)
    return envelopes


async def handle_rename(conn: AsyncConnection, store: EventStore, agency_id: str, name: str, effective: dt.date,
                        legal_basis: str, meta: Metadata) -> Envelope:
    await lock_units(conn)
    unit = await require(conn, agency_id, "agency_id")
    event = domain.rename(unit, name, effective, legal_basis)
    [env] = await record(conn, store, meta, [(stream_id(agency_id), unit.version, [event])])
    return env


async def handle_reparent(conn: AsyncConnection, store: EventStore, agency_id: str, parent_id: str | None,
                          effective: dt.date, legal_basis: str, meta: Metadata, visible: Visible | None = None
                          ) -> Envelope:
    await lock_units(conn)
    unit = await require(conn, agency_id, "agency_id")
    parent = await find_parent(conn, parent_id, visible)
    event = domain.reparent(unit, parent, parent_id, effective, legal_basis,
                            await ancestors(conn, parent_id) if parent is not None else ())
    [env] = await record(conn, store, meta, [(stream_id(agency_id), unit.version, [event])])
    return env


async def handle_merge(conn: AsyncConnection, store: EventStore, predecessor_ids: Sequence[str],
                       successor: RegisterUnit, legal_basis: str, meta: Metadata,
                       visible: Visible | None = None) -> list[Envelope]:
    await lock_units(conn)
    preds = [await require(conn, p, "predecessor_ids") for p in predecessor_ids]
    events = domain.merge(preds, successor, existing=await find(conn, successor.agency_id),
                          parent=await find_parent(conn, successor.parent_id, visible),
                          clashes=await with_code(conn, successor.code),
                          legal_basis=legal_basis)
    return await record(conn, store, meta, [(stream_id(successor.agency_id), 0, events)])


async def handle_split(conn: AsyncConnection, store: EventStore, predecessor_id: str,
                       successors: Sequence[RegisterUnit], effective: dt.date, legal_basis: str,
                       meta: Metadata, visible: Visible | None = None) -> list[Envelope]:
    await lock_units(conn)
    pred = await require(conn, predecessor_id, "predecessor_id")
    loaded = [(s, await find(conn, s.agency_id), await find_parent(conn, s.parent_id, visible),
               await with_code(conn, s.code))
              for s in successors]
    *registered, split_event = domain.split(pred, loaded, legal_basis, effective)
    batches: list[tuple[str, int | None, Sequence[object]]] = [
        (stream_id(e.agency_id), 0, [e]) for e in registered  # type: ignore[attr-defined]
    ]
    batches.append((stream_id(predecessor_id), pred.version, [split_event]))
    return await record(conn, store, meta, batches)  # type: ignore[arg-type]


async def handle_dissolve(conn: AsyncConnection, store: EventStore, agency_id: str, effective: dt.date,
                          legal_basis: str, meta: Metadata) -> Envelope:
    await lock_units(conn)
    unit = await require(conn, agency_id, "agency_id")
    [env] = await record(conn, store, meta,
                         [(stream_id(agency_id), unit.version, [domain.dissolve(unit, effective, legal_basis)])])
    return env


# --- queries -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class UnitOn:
    """A unit as it stood on a date: its name and parent from the history valid then."""

    agency_id: str
    code: str
    name: str
    level: str
    parent_id: str | None
    province: str | None
    valid_from: dt.date
    valid_to: dt.date | None
    legal_basis: str | None


def as_of_query(day: dt.date):  # type: ignore[no-untyped-def]
    """Units valid on ``day`` with the name and parent their history gives for that day: each unit's history
    row looked up by its key (a lateral join). Not the history's latest rows made for all units and then
    joined: a page cost the whole history then, and with statistics from before a large import (a province's
    file of thousands of units) the planner looped over all of it for every unit — seconds a page."""
    latest = (
        select(unit_history.c.name, unit_history.c.parent_id)
        .where(unit_history.c.agency_id == units.c.agency_id, unit_history.c.effective_date <= day)
        .order_by(unit_history.c.effective_date.desc())
        .limit(1)
        .lateral("latest")
    )
    return (
        select(units.c.agency_id, units.c.code, latest.c.name, units.c.level, latest.c.parent_id, units.c.province,
               units.c.valid_from, units.c.valid_to, units.c.legal_basis)
        .join(latest, true())
        .where(units.c.valid_from <= day, or_(units.c.valid_to.is_(None), units.c.valid_to >= day))
    )


@dataclass(frozen=True)
class Link:
    agency_id: str
    code: str
    name: str
    level: str
    effective_date: dt.date
    kind: str
    legal_basis: str
    depth: int


async def crosswalk(conn: AsyncConnection, agency_id: str, direction: str) -> list[Link]:
    """Every unit reached by following merge/split links forwards (successors) or back (predecessors)."""
    here, there = ((unit_links.c.predecessor_id, unit_links.c.successor_id) if direction == "successors"
                   else (unit_links.c.successor_id, unit_links.c.predecessor_id))
    out: list[Link] = []
    frontier, seen, depth = [agency_id], {agency_id}, 0
    while frontier:
        depth += 1
        rows = (await conn.execute(
            select(there.label("other"), unit_links.c.effective_date, unit_links.c.kind, unit_links.c.legal_basis,
                   units.c.code, units.c.name, units.c.level)
            .join(units, units.c.agency_id == there)
            .where(here.in_(frontier))
            .order_by(units.c.code)
        )).all()
        frontier = []
        for r in rows:
            if r.other not in seen:
                seen.add(r.other)
                frontier.append(r.other)
                out.append(Link(r.other, r.code, r.name, r.level, r.effective_date, r.kind, r.legal_basis, depth))
    return out


async def count_valid(conn: AsyncConnection, day: dt.date, level: str) -> int:
    stmt = select(func.count()).select_from(units).where(
        and_(units.c.level == level, units.c.valid_from <= day,
             or_(units.c.valid_to.is_(None), units.c.valid_to >= day)))
    return int((await conn.execute(stmt)).scalar_one())
