"""Reveal of one resident stage: check the seed, re-read the pinned stage frame, draw, record, publish.

Each parent (the province, a selected commune, a selected village) is drawn by the pure function of its
stage with the revealed seed; the parents' digests must rebuild the stage digest the commitment pinned.
The selection is kept with its conditional and overall inclusion probabilities (``stage_units``,
``stage_parents``) and published in ``StageDrawn``. The households stage also writes ``sample_units``
(stratum = ``commune/village``, so a withdrawn household is replaced by the next reserve of its village;
weight = 1 / overall inclusion, reserves carrying the weight of the slot they fill) and ``SampleDrawn``,
which the ballots service consumes exactly as for the frame design.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.catalogue.sampling import StageArea, StageDrawn, StageParent
from sipas_events.store import EventStore, Metadata
from sipas_sampling.adapters.keys import KeySource
from sipas_sampling.adapters.tables import (
    draws,
    frames,
    household_listings,
    resident_rounds,
    stage_areas,
    stage_parents,
    stage_units,
)
from sipas_sampling.application import resident
from sipas_sampling.application.campaign_keys import pseudonym_salt
from sipas_sampling.application.rounds import NotFound, WrongState
from sipas_sampling.application.sample_writer import DrawHeader, Role, SampleWriter
from sipas_sampling.domain.draw import ReservePolicy
from sipas_sampling.domain.errors import FrameMismatch, InvalidParameter
from sipas_sampling.domain.prng import check_seed, seed_commitment
from sipas_sampling.domain.resident import (
    RESIDENT_ALGORITHM_VERSION,
    Area,
    StageDraw,
    StageUnit,
    draw_communes,
    draw_households,
    draw_villages,
    fraction_text,
    household_key,
    stage_digest,
)
from sipas_sampling.domain.weights import as_decimal


@dataclass(frozen=True)
class _Part:
    """One parent's draw, with the size of its frame and its own inclusion probability."""

    draw: StageDraw
    units: int
    inclusion: Fraction


async def is_stage_draw(conn: AsyncConnection, draw_id: str) -> bool:
    return (await conn.execute(select(draws.c.stage).where(draws.c.draw_id == draw_id))).scalar() is not None


async def reveal_stage(conn: AsyncConnection, store: EventStore, keys: KeySource, draw_id: str, seed: str,
                       reserve_ratio: str, meta: Metadata) -> dict[str, Any]:
    draw = (await conn.execute(select(draws).where(draws.c.draw_id == draw_id).with_for_update())).first()
    if draw is None or draw.stage is None:
        raise NotFound(f"no resident stage draw {draw_id}", "draw_id")
    if draw.status != "committed":
        raise WrongState(f"draw {draw_id} was already revealed", "draw_id")
    if seed_commitment(check_seed(seed)) != draw.seed_commitment:
        raise InvalidParameter("the seed does not hash to the committed SHA-256", "seed")
    rnd = await resident.lock_round(conn, draw.round_id)
    settings, sizes = rnd.settings, await _sizes(conn, draw.frame_id)
    if draw.stage == "communes":
        parts = _communes(sizes, settings, seed)
    elif draw.stage == "villages":
        parts = _villages(sizes, await resident.chosen(conn, rnd.round_id, "communes"), settings, seed)
    else:
        await _one_household_sample(conn, rnd)
        parts = await _households(conn, keys, draw, await resident.chosen(conn, rnd.round_id, "villages"),
                                  settings, seed, ReservePolicy.of_ratio(Fraction(reserve_ratio)))
    pinned = (await conn.execute(select(frames.c.digest).where(frames.c.frame_id == draw.frame_id))).scalar()
    digest = stage_digest({p.draw.parent: p.draw.frame_digest for p in parts})
    if digest != pinned:
        raise FrameMismatch(f"the {draw.stage} frame now digests to {digest}, not the committed {pinned}", "frame")
    await _record(conn, draw_id, parts, {code: n for rows in sizes.values() for code, n in rows})
    event = StageDrawn(
        draw_id=draw_id, round_id=rnd.round_id, campaign_id=rnd.campaign_id, province=settings.get("province"),
        stage=draw.stage, frame_digest=digest, seed_commitment=draw.seed_commitment, seed=seed,
        algorithm_version=RESIDENT_ALGORITHM_VERSION, parents=[_parent(p) for p in parts],
        areas=[] if draw.stage == "households" else _areas(parts, sizes))
    await store.append(conn, f"draw-{draw_id}", [event], expected_version=None, meta=meta)
    if draw.stage == "households":
        await _sample(conn, SampleWriter(conn, store, meta, DrawHeader(
            draw_id=draw_id, campaign_id=rnd.campaign_id, province=settings.get("province"), frame_digest=digest,
            seed_commitment=draw.seed_commitment, seed=seed, algorithm_version=RESIDENT_ALGORITHM_VERSION),
            selected=sum(len(p.draw.selected) for p in parts), units="households"), rnd, parts)
    await conn.execute(update(draws).where(draws.c.draw_id == draw_id).values(seed=seed, status="drawn"))
    await conn.execute(update(resident_rounds).where(resident_rounds.c.round_id == rnd.round_id)
                       .values(status=resident.NEXT[draw.stage]))
    return {"draw_id": draw_id, "round_id": rnd.round_id, "stage": draw.stage,
            "selected": sum(len(p.draw.selected) for p in parts), "reserves": sum(len(p.draw.reserves) for p in parts),
            "frame_digest": digest, "algorithm_version": RESIDENT_ALGORITHM_VERSION,
            "next": resident.NEXT[draw.stage]}


async def _sizes(conn: AsyncConnection, frame_id: str) -> dict[str, list[tuple[str, int]]]:
    """Parent -> its communes or villages with their households, from the pinned stage frame."""
    a = stage_areas.c
    out: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for r in await conn.execute(select(a.parent_code, a.code, a.households).where(a.frame_id == frame_id)):
        out[r.parent_code].append((r.code, r.households))
    return out


def _communes(sizes: dict[str, list[tuple[str, int]]], settings: dict[str, Any], seed: str) -> list[_Part]:
    m, method = settings["communes"] or 0, settings["commune_method"]
    return [_Part(draw_communes([Area(c, n) for c, n in rows], m, seed=seed, stratum=province, method=method),
                  len(rows), Fraction(1)) for province, rows in sorted(sizes.items())]


def _villages(sizes: dict[str, list[tuple[str, int]]], communes: dict[str, resident.Chosen], settings: dict[str, Any],
              seed: str) -> list[_Part]:
    k = settings["villages_per_commune"]
    return [_Part(draw_villages(c.unit, [Area(v, n) for v, n in sizes.get(code, [])], k, seed=seed),
                  len(sizes.get(code, [])), c.unit.inclusion) for code, c in sorted(communes.items())]


async def _households(conn: AsyncConnection, keys: KeySource, draw: Any, villages: dict[str, resident.Chosen],
                      settings: dict[str, Any], seed: str, policy: ReservePolicy) -> list[_Part]:
    h = settings["households_per_village"]
    salt = await pseudonym_salt(conn, keys, draw.campaign_id)
    listing: dict[str, list[str]] = defaultdict(list)
    hl = household_listings.c
    for village, household in await conn.execute(select(hl.village_code, hl.household_id)
                                                 .where(hl.frame_id == draw.frame_id)):
        listing[village].append(household)
    parts = []
    for code, village in sorted(villages.items()):
        listed = listing.get(code, [])
        reserves = policy.size(len(listed), min(h, len(listed)))
        parts.append(_Part(draw_households(village.unit, listed, h, seed=seed, campaign_salt=salt, reserves=reserves),
                           len(listed), village.unit.inclusion))
    return parts


async def _one_household_sample(conn: AsyncConnection, rnd: Any) -> None:
    """A campaign has one household sample: a second would issue a second set of ballots."""
    other = (await conn.execute(select(resident_rounds.c.round_id).where(
        resident_rounds.c.campaign_id == rnd.campaign_id, resident_rounds.c.status == "drawn"))).scalar()
    if other is not None:
        raise WrongState(f"campaign {rnd.campaign_id} already has its household sample (round {other})", "round_id")


async def _record(conn: AsyncConnection, draw_id: str, parts: list[_Part], households: dict[str, int]) -> None:
    await conn.execute(insert(stage_parents), [
        {"draw_id": draw_id, "parent_code": p.draw.parent, "frame_digest": p.draw.frame_digest, "units": p.units,
         "selected": len(p.draw.selected), "reserves": len(p.draw.reserves), "inclusion": fraction_text(p.inclusion)}
        for p in parts])
    rows = [{"draw_id": draw_id, "parent_code": p.draw.parent, "role": role, "rank": u.rank,
             "code": household_key(p.draw.parent, u.code) if u.unit_id else u.code,
             "households": None if u.unit_id else households.get(u.code), "conditional": fraction_text(u.conditional),
             "inclusion": fraction_text(u.inclusion), "unit_id": u.unit_id}
            for p in parts for role, units in (("selected", p.draw.selected), ("reserve", p.draw.reserves))
            for u in units]
    for start in range(0, len(rows), 5000):
        await conn.execute(insert(stage_units), rows[start:start + 5000])


def _parent(p: _Part) -> StageParent:
    return StageParent(code=p.draw.parent, frame_digest=p.draw.frame_digest, units=p.units,
                       selected=len(p.draw.selected), reserves=len(p.draw.reserves),
                       inclusion=fraction_text(p.inclusion))


def _areas(parts: list[_Part], sizes: dict[str, list[tuple[str, int]]]) -> list[StageArea]:
    households = {code: n for rows in sizes.values() for code, n in rows}
    return [StageArea(code=u.code, parent=p.draw.parent, rank=u.rank, households=households[u.code],
                      conditional=fraction_text(u.conditional), inclusion=fraction_text(u.inclusion))
            for p in parts for u in p.draw.selected]


async def _sample(conn: AsyncConnection, sample: SampleWriter, rnd: Any, parts: list[_Part]) -> None:
    """The households as the live sample: ``sample_units`` rows and the ``SampleDrawn`` parts."""
    villages = await resident.chosen(conn, rnd.round_id, "villages")
    communes_draw = await resident.stage_draw(conn, rnd.round_id, "communes")
    a = stage_areas.c
    agency_of = {r.code: r.agency_id for r in await conn.execute(
        select(a.code, a.agency_id).where(a.frame_id == communes_draw.frame_id))}
    for p in parts:
        village = p.draw.parent
        commune = villages[village].parent
        roles: tuple[tuple[Role, tuple[StageUnit, ...]], ...] = (("selected", p.draw.selected),
                                                                  ("reserve", p.draw.reserves))
        for role, drawn in roles:
            for u in drawn:
                await sample.add(unit_id=u.unit_id or "", dossier_id=household_key(village, u.code),
                                 agency_code=commune, agency_id=agency_of.get(commune),
                                 stratum=f"{commune}/{village}", role=role, rank=u.rank, weight=as_decimal(u.weight))
    await sample.close()
