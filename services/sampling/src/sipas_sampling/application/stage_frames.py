"""Stage frames of the resident design: communes' sizes, the selected communes' villages, the selected
villages' household listings.

They are uploaded like frames: the file is streamed to a temporary file and read one row at a time;
every row is checked (``domain/listing.py``), household heads' names, phones and addresses are sealed
at once with the campaign's data key (associated data: campaign and household key), rows are written
with COPY, and every fault goes to ``frame_errors`` with its line, field and code — never the value.
``all_or_nothing`` keeps nothing if a row fails; ``accept_valid`` keeps the good rows.

One rule more than frames: a stage frame must *cover* what it is for — every commune of the campaign
in the registry, every commune stage 1 selected, every village stage 2 selected — or it is refused in
either mode (an ``unlisted`` line 0 in the report per gap), since a unit left out would silently have
no chance of selection.

*Why stage 1 takes the operator's ``commune_code,households`` file rather than sums of village
listings*: stage 1 comes before any village is listed — villages are listed only in the communes it
selects, which is the point of drawing in stages — so a size per commune must come from elsewhere
(the statistics office's household counts). The registry still decides which communes exist: a code
that is not one of the campaign's communes on the first day of collection is refused, and a commune
missing from the file refuses the file.

*Why no staging table*: a stage file holds a province's communes, or the villages of a few dozen
communes, or the households of a few hundred villages: rows are checked and held (contacts already
sealed) until the file is known to be good, then COPYed. The frame design's staging table exists for
ten-million-row frames, where the set of seen ids would not fit in memory.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sipas_events.catalogue.sampling import FrameImported
from sipas_events.ids import new_id
from sipas_events.store import EventStore, Metadata
from sipas_sampling.adapters.keys import Contact, KeySource, Sealer
from sipas_sampling.adapters.tables import reference
from sipas_sampling.application import resident
from sipas_sampling.application.campaign_keys import data_key
from sipas_sampling.application.frames import MAX_REPORTED, UnreadableFrame, copy_records, read_rows, record_frame
from sipas_sampling.application.rounds import NotFound
from sipas_sampling.domain.frame import RowError
from sipas_sampling.domain.listing import Checked, check_commune, check_household, check_village, unlisted
from sipas_sampling.domain.resident import (
    STAGE_DIGEST_VERSION,
    Area,
    area_digest,
    household_key,
    listing_digest,
    stage_digest,
)

COLUMNS = {
    "communes": ("commune_code", "households"),
    "villages": ("commune_code", "village_code", "village_name", "households"),
    "households": ("village_code", "household_id", "head_name"),
}
TABLES = {
    "communes": ("stage_areas", ["frame_id", "code", "parent_code", "agency_id", "name", "households"]),
    "villages": ("stage_areas", ["frame_id", "code", "parent_code", "agency_id", "name", "households"]),
    "households": ("household_listings", ["frame_id", "household_key", "village_code", "household_id", "contact"]),
}


@dataclass(frozen=True)
class StageFrameResult:
    frame_id: str
    status: str
    rows: int
    rejected_rows: int
    unlisted: int
    digest: str | None


@dataclass
class _Loaded:
    records: list[tuple[Any, ...]] = field(default_factory=list)
    members: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    """Parent code -> what its digest is computed over (areas or household ids)."""
    errors: list[RowError] = field(default_factory=list)
    rejected: int = 0
    gaps: list[RowError] = field(default_factory=list)

    def take(self, check: Checked[Any]) -> Any:
        if check.row is None:
            self.rejected += 1
            self.errors.extend(check.errors)
        return check.row


async def import_stage_frame(engine: AsyncEngine, store: EventStore, keys: KeySource, *,
                             campaign: Mapping[str, Any], round_id: str, stage: resident.Stage, spool: IO[bytes],
                             filename: str, file_sha256: str, mode: str, meta: Metadata) -> StageFrameResult:
    frame_id = str(new_id())
    record = {"frame_id": frame_id, "campaign_id": campaign["campaign_id"], "filename": filename,
              "file_sha256": file_sha256, "mode": mode, "created_by": meta.actor, "round_id": round_id,
              "stage": stage}
    async with engine.begin() as conn:  # the round stays locked: no commit can slip in during the upload
        rnd = await resident.lock_round(conn, round_id)
        if rnd.campaign_id != campaign["campaign_id"]:
            raise NotFound(f"no resident round {round_id} in campaign {campaign['campaign_id']}", "round_id")
        await resident.require_open_stage(conn, rnd, stage)
        rows = read_rows(spool, filename, COLUMNS[stage])
        loaded = await LOADERS[stage](conn, keys, campaign, round_id, frame_id, rows)
        if not loaded.records and not loaded.rejected:
            raise UnreadableFrame("the file has a header but no rows", "file")
        report = [(frame_id, e.line or 0, e.field, e.code, e.message) for e in [*loaded.gaps, *loaded.errors]]
        accepted = len(loaded.records)
        if loaded.gaps or not accepted or (mode == "all_or_nothing" and loaded.rejected):
            await record_frame(conn, record | {"status": "rejected", "rows": 0, "rejected_rows": loaded.rejected,
                                               "digest": None}, report[:MAX_REPORTED])
            return StageFrameResult(frame_id, "rejected", 0, loaded.rejected, len(loaded.gaps), None)
        table, columns = TABLES[stage]
        await copy_records(conn, table, columns, loaded.records)
        digest = stage_digest({parent: _digest(stage, parent, members) for parent, members in loaded.members.items()})
        await record_frame(conn, record | {"status": "imported", "rows": accepted, "rejected_rows": loaded.rejected,
                                           "digest": digest}, report[:MAX_REPORTED])
        event = FrameImported(frame_id=frame_id, campaign_id=campaign["campaign_id"], province=campaign["province"],
                              design="resident", round_id=round_id, stage=stage, mode=mode,  # type: ignore[arg-type]
                              rows=accepted, rejected_rows=loaded.rejected, digest=digest,
                              digest_version=STAGE_DIGEST_VERSION)
        await store.append(conn, f"frame-{frame_id}", [event], expected_version=0, meta=meta)
        return StageFrameResult(frame_id, "imported", accepted, loaded.rejected, 0, digest)


def _digest(stage: str, parent: str, members: list[Any]) -> str:
    return listing_digest(parent, members) if stage == "households" else area_digest(members)


Rows = Iterator[tuple[int, dict[str, Any]]]


async def _communes(conn: AsyncConnection, keys: KeySource, campaign: Mapping[str, Any], round_id: str,
                    frame_id: str, rows: Rows) -> _Loaded:
    day = dt.date.fromisoformat(campaign["definition"]["collection_window"]["start"])
    registry = await campaign_communes(conn, campaign["province"], day)
    loaded, seen = _Loaded(), set[str]()
    for line, raw in rows:
        row = loaded.take(check_commune(raw, registry.__contains__, seen, line))
        if row is not None:
            agency_id, province, _name = registry[row.code]
            loaded.records.append((frame_id, row.code, province, agency_id, None, row.households))
            loaded.members[province].append(Area(row.code, row.households))
    listed = {r[1] for r in loaded.records}
    wanted = {code: f"commune {code} ({name}, province {province})" for code, (_, province, name) in registry.items()}
    loaded.gaps = unlisted(wanted, listed, "commune_code", "every commune of the campaign needs its household count")
    return loaded


async def campaign_communes(conn: AsyncConnection, province: str | None,
                            day: dt.date) -> dict[str, tuple[str, str, str]]:
    """Commune code -> (agency id, province, name): the registry's communes of the campaign on ``day``."""
    a = reference.agencies.c
    stmt = select(a.code, a.agency_id, a.province, a.name).where(
        a.level == "commune", a.valid_from <= day, or_(a.valid_to.is_(None), a.valid_to >= day))
    if province is not None:
        stmt = stmt.where(a.province == province)
    return {r.code: (r.agency_id, r.province or "", r.name) for r in await conn.execute(stmt)}


async def _villages(conn: AsyncConnection, keys: KeySource, campaign: Mapping[str, Any], round_id: str,
                    frame_id: str, rows: Rows) -> _Loaded:
    communes = await resident.chosen(conn, round_id, "communes")
    loaded, seen = _Loaded(), set[str]()
    sizes: dict[str, int] = defaultdict(int)
    for line, raw in rows:
        row = loaded.take(check_village(raw, communes, seen, line))
        if row is not None:
            loaded.records.append((frame_id, row.code, row.commune_code, None, row.name, row.households))
            loaded.members[row.commune_code].append(Area(row.code, row.households))
            sizes[row.commune_code] += row.households
    wanted = {code: f"selected commune {code}" for code in communes}
    loaded.gaps = unlisted(wanted, {c for c, n in sizes.items() if n > 0}, "commune_code",
                           "every selected commune needs its villages, with households")
    return loaded


async def _households(conn: AsyncConnection, keys: KeySource, campaign: Mapping[str, Any], round_id: str,
                      frame_id: str, rows: Rows) -> _Loaded:
    villages = await resident.chosen(conn, round_id, "villages")
    sealer = Sealer(await data_key(conn, keys, campaign["campaign_id"]), campaign["campaign_id"])
    loaded, seen = _Loaded(), set[tuple[str, str]]()
    for line, raw in rows:
        row = loaded.take(check_household(raw, villages, seen, line))
        if row is not None:
            key = household_key(row.village_code, row.household_id)
            contact = sealer.seal(key, Contact(row.head_name, row.phone, row.address))
            loaded.records.append((frame_id, key, row.village_code, row.household_id, contact))
            loaded.members[row.village_code].append(row.household_id)
    wanted = {code: f"selected village {code}" for code in villages}
    loaded.gaps = unlisted(wanted, loaded.members.keys(), "village_code", "every selected village needs its listing")
    return loaded


Loader = Callable[[AsyncConnection, KeySource, Mapping[str, Any], str, str, Rows], Awaitable[_Loaded]]
LOADERS: dict[str, Loader] = {"communes": _communes, "villages": _villages, "households": _households}
