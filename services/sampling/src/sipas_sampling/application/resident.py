"""Rounds of the resident design: open → per stage (its frame, the seed's commitment, the reveal) → households.

A round walks communes → villages → households (METHODOLOGY §5). Each stage works like a draw of the frame
design: the stage frame is uploaded and pinned by its digest (``stage_frames``), the SHA-256 of the seed is
committed (``DrawCommitted`` naming the round and stage), then the seed is revealed and the stage drawn by
the pure functions of ``domain/resident.py`` (``resident_draws``). A stage's frame is accepted only once the
stage before it is drawn, and only for what that stage selected.

*Why no plan and approval step*: the sizes (communes per province, villages per commune, households per
village) are the campaign's own settings, approved when the campaign was opened, and are pinned here by
``ResidentRoundOpened`` before any frame or seed exists; the commit pins the frame.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.catalogue.registry import SamplingSettings
from sipas_events.catalogue.sampling import DrawCommitted, ResidentRoundOpened
from sipas_events.ids import new_id
from sipas_events.store import EventStore, Metadata
from sipas_sampling.adapters.keys import KeySource
from sipas_sampling.adapters.tables import draws, frames, resident_rounds, stage_areas, stage_parents, stage_units
from sipas_sampling.application.campaign_keys import pseudonym_salt
from sipas_sampling.application.rounds import NotFound, WrongState
from sipas_sampling.domain.resident import RESIDENT_ALGORITHM_VERSION, StageUnit
from sipas_sampling.domain.weights import as_decimal

Stage = Literal["communes", "villages", "households"]
STAGES: tuple[Stage, ...] = ("communes", "villages", "households")
NEXT = {"communes": "villages", "villages": "households", "households": "drawn"}


@dataclass(frozen=True)
class Chosen:
    """A unit a drawn stage selected, and the unit above it (the province, the commune)."""

    unit: StageUnit
    parent: str


async def open_round(conn: AsyncConnection, store: EventStore, campaign: Mapping[str, Any],
                     meta: Metadata) -> dict[str, Any]:
    settings = SamplingSettings.model_validate(campaign["definition"].get("sampling") or {})
    if settings.design != "resident":
        raise WrongState(f"campaign {campaign['campaign_id']} uses the {settings.design} design: upload a frame "
                         "and propose a plan instead", "campaign_id")
    event = ResidentRoundOpened(
        round_id=str(new_id()), campaign_id=campaign["campaign_id"], province=campaign["province"],
        commune_method=settings.commune_method,
        communes=None if settings.commune_method == "all" else settings.communes,
        villages_per_commune=settings.villages_per_commune, households_per_village=settings.households_per_village,
        algorithm_version=RESIDENT_ALGORITHM_VERSION)
    body = event.payload()
    await conn.execute(insert(resident_rounds).values(
        round_id=event.round_id, campaign_id=event.campaign_id, status="communes", settings=body,
        created_by=meta.actor, created_at=dt.datetime.now(dt.UTC)))
    await store.append(conn, f"round-{event.round_id}", [event], expected_version=0, meta=meta)
    return body | {"status": "communes"}


async def lock_round(conn: AsyncConnection, round_id: str) -> Any:
    row = (await conn.execute(select(resident_rounds).where(resident_rounds.c.round_id == round_id)
                              .with_for_update())).first()
    if row is None:
        raise NotFound(f"no resident round {round_id}", "round_id")
    return row


async def stage_draw(conn: AsyncConnection, round_id: str, stage: str) -> Any:
    """The stage's draw (committed or drawn), if any."""
    return (await conn.execute(select(draws).where(draws.c.round_id == round_id, draws.c.stage == stage))).first()


async def require_open_stage(conn: AsyncConnection, rnd: Any, stage: str) -> None:
    """A stage takes frames and a commitment only when it is next and not yet committed."""
    if rnd.status != stage:
        wanted = "every stage is drawn" if rnd.status == "drawn" else f"the {rnd.status} stage is next"
        raise WrongState(f"round {rnd.round_id}: {wanted}, not the {stage} stage", "stage")
    taken = await stage_draw(conn, rnd.round_id, stage)
    if taken is not None:
        raise WrongState(f"round {rnd.round_id}: the {stage} stage is already committed (draw {taken.draw_id})",
                         "stage")


async def chosen(conn: AsyncConnection, round_id: str, stage: str) -> dict[str, Chosen]:
    """What a drawn stage selected (its reserves excluded): code -> unit and parent."""
    draw = await stage_draw(conn, round_id, stage)
    if draw is None or draw.status != "drawn":
        raise WrongState(f"round {round_id}: the {stage} stage is not drawn yet", "stage")
    rows = await conn.execute(select(stage_units).where(stage_units.c.draw_id == draw.draw_id,
                                                        stage_units.c.role == "selected"))
    return {r.code: Chosen(StageUnit(r.code, Fraction(r.conditional), Fraction(r.inclusion), r.rank), r.parent_code)
            for r in rows}


async def commit_stage(conn: AsyncConnection, store: EventStore, round_id: str, stage: Stage, frame_id: str,
                       commitment: str, meta: Metadata) -> str:
    rnd = await lock_round(conn, round_id)
    await require_open_stage(conn, rnd, stage)
    frame = (await conn.execute(select(frames).where(frames.c.frame_id == frame_id))).first()
    if frame is None or frame.round_id != round_id or frame.stage != stage or frame.status != "imported":
        raise NotFound(f"no imported {stage} frame {frame_id} in round {round_id}", "frame_id")
    draw_id = str(new_id())
    await conn.execute(insert(draws).values(
        draw_id=draw_id, plan_id=None, round_id=round_id, stage=stage, frame_id=frame_id,
        campaign_id=rnd.campaign_id, seed_commitment=commitment, status="committed",
        created_at=dt.datetime.now(dt.UTC)))
    event = DrawCommitted(draw_id=draw_id, round_id=round_id, stage=stage, campaign_id=rnd.campaign_id,
                          province=rnd.settings.get("province"), frame_digest=frame.digest,
                          seed_commitment=commitment, algorithm_version=RESIDENT_ALGORITHM_VERSION)
    await store.append(conn, f"draw-{draw_id}", [event], expected_version=0, meta=meta)
    return draw_id


async def round_view(conn: AsyncConnection, round_id: str) -> dict[str, Any]:
    """The round as an observer checks it: settings, every stage frame, each stage's commitment, seed, digests."""
    rnd = (await conn.execute(select(resident_rounds).where(resident_rounds.c.round_id == round_id))).first()
    if rnd is None:
        raise NotFound(f"no resident round {round_id}", "round_id")
    f = frames.c
    uploads = (await conn.execute(select(f.frame_id, f.stage, f.status, f.rows, f.rejected_rows, f.digest,
                                         f.created_at).where(f.round_id == round_id).order_by(f.created_at))).all()
    stages: dict[str, Any] = {s: {"frames": [], "draw": None} for s in STAGES}
    for u in uploads:
        stages[u.stage]["frames"].append(u._asdict() | {"created_at": u.created_at.isoformat()})
    for d in (await conn.execute(select(draws).where(draws.c.round_id == round_id))).all():
        parents = (await conn.execute(select(stage_parents).where(stage_parents.c.draw_id == d.draw_id)
                                      .order_by(stage_parents.c.parent_code))).mappings()
        stages[d.stage]["draw"] = {
            "draw_id": d.draw_id, "frame_id": d.frame_id, "status": d.status, "seed_commitment": d.seed_commitment,
            "seed": d.seed, "parents": [{k: v for k, v in p.items() if k != "draw_id"} for p in parents]}
    return {"round_id": round_id, "campaign_id": rnd.campaign_id, "status": rnd.status, "settings": rnd.settings,
            "stages": stages}


async def stage_selection(conn: AsyncConnection, round_id: str, stage: str) -> list[dict[str, Any]]:
    """A drawn stage's units with their probabilities; households by unit id only (never their listing id)."""
    draw = await stage_draw(conn, round_id, stage)
    if draw is None or draw.status != "drawn":
        raise NotFound(f"round {round_id}: the {stage} stage is not drawn", "stage")
    s = stage_units.c
    rows = await conn.execute(select(stage_units).where(s.draw_id == draw.draw_id)
                              .order_by(s.parent_code, s.role.desc(), s.rank))
    out = []
    for r in rows:
        item = {"parent": r.parent_code, "role": r.role, "rank": r.rank, "conditional": r.conditional,
                "inclusion": r.inclusion, "weight": str(as_decimal(1 / Fraction(r.inclusion)))}
        out.append(item | ({"unit_id": r.unit_id} if stage == "households"
                           else {"code": r.code, "households": r.households}))
    return out


KIT_KIND = "resident-stage"
SIZES = ("commune_method", "communes", "villages_per_commune", "households_per_village")


async def verification_kit(conn: AsyncConnection, keys: KeySource, draw: Mapping[str, Any]) -> dict[str, Any]:
    """What an auditor needs to re-run one revealed stage offline from its stage frame file.

    The seed and its commitment, the stage digest the commitment pinned, the sizes the round pinned, each
    parent's digest and inclusion probability, and what was selected. The communes stage adds the communes
    its frame was checked against (code -> province: the registry's, as accepted at upload), the households
    stage the campaign's pseudonym salt, so the unit ids can be recomputed — as in the frame design's kit.
    Households are named by unit id only; no name, phone or address is in it.
    """
    rnd = (await conn.execute(select(resident_rounds).where(resident_rounds.c.round_id == draw["round_id"]))).one()
    digest = (await conn.execute(select(frames.c.digest).where(frames.c.frame_id == draw["frame_id"]))).scalar()
    p, s = stage_parents.c, stage_units.c
    parents = (await conn.execute(select(p.parent_code, p.frame_digest, p.units, p.selected, p.reserves, p.inclusion)
                                  .where(p.draw_id == draw["draw_id"]).order_by(p.parent_code))).all()
    units = await conn.execute(select(stage_units).where(s.draw_id == draw["draw_id"])
                               .order_by(s.parent_code, s.role.desc(), s.rank))
    households = draw["stage"] == "households"
    kit: dict[str, Any] = {
        "kind": KIT_KIND, "draw_id": draw["draw_id"], "round_id": rnd.round_id, "campaign_id": rnd.campaign_id,
        "stage": draw["stage"], "algorithm_version": rnd.settings["algorithm_version"], "seed": draw["seed"],
        "seed_commitment": draw["seed_commitment"], "frame_id": draw["frame_id"], "frame_digest": digest,
        "sizes": {k: rnd.settings[k] for k in SIZES},
        "parents": [{"code": r.parent_code, "frame_digest": r.frame_digest, "units": r.units, "selected": r.selected,
                     "reserves": r.reserves, "inclusion": r.inclusion} for r in parents],
        "units": [{"parent": u.parent_code, "role": u.role, "rank": u.rank, "conditional": u.conditional,
                   "inclusion": u.inclusion} | ({"unit_id": u.unit_id} if households
                                                else {"code": u.code, "households": u.households}) for u in units]}
    if draw["stage"] == "communes":
        a = stage_areas.c
        kit["communes"] = {r.code: r.parent_code for r in await conn.execute(
            select(a.code, a.parent_code).where(a.frame_id == draw["frame_id"]).order_by(a.code))}
    if households:
        kit["campaign_salt"] = (await pseudonym_salt(conn, keys, rnd.campaign_id)).hex()
    return kit
