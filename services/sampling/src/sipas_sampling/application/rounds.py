"""Plans, draws and the live sample: propose → approve → commit the seed's hash → reveal and draw;
withdraw a unit and take the next reserve; read a contact (logged); shred at retention end."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.catalogue.sampling import (
    DrawCommitted,
    PersonalDataShredded,
    SampledUnit,
    SamplePlanApproved,
    SamplePlanProposed,
    StratumPlanned,
    StratumWeights,
    UnitReplaced,
    UnitWithdrawn,
    WeightsAdjusted,
)
from sipas_events.ids import new_id
from sipas_events.store import EventStore, Metadata
from sipas_sampling.adapters.keys import KeySource, Sealer
from sipas_sampling.adapters.tables import contact_reads, draws, frame_units, frames, plans, sample_units, stage_parents
from sipas_sampling.application.campaign_keys import data_key, pseudonym_salt, shred
from sipas_sampling.application.contacts import CONTACT, UNITS_WITH_CONTACTS, erase_campaign, erase_contact
from sipas_sampling.application.sample_writer import DrawHeader, Role, SampleWriter
from sipas_sampling.domain.allocation import SamplePlan, StratumPlan, plan_by_rule
from sipas_sampling.domain.draw import ALGORITHM_VERSION, ReservePolicy, stratum_picks
from sipas_sampling.domain.errors import FrameMismatch, InvalidParameter, SamplingError, UnitNotActive
from sipas_sampling.domain.prng import check_seed, seed_commitment
from sipas_sampling.domain.pseudonym import check_salt, unit_ids
from sipas_sampling.domain.size import Cochran, Slovin
from sipas_sampling.domain.strata import label
from sipas_sampling.domain.weights import StratumOutcome, stratum_weight

# The campaign's stratification keys and the frame_units column each reads.
DIMENSIONS = {"agency": "agency_code", "service_field": "service_field", "level": "level", "area": "area"}
POSITIONS_CHUNK = 5000  # a stratum's picks fetched at most this many at a time: memory stays bounded


class NotFound(SamplingError):
    pass


class WrongState(SamplingError):
    pass


def _plan_from(body: Mapping[str, Any]) -> SamplePlan:
    strata = tuple(StratumPlan(tuple(s["key"]), s["population"], s["sample"],
                               Decimal(s["margin"]) if s["margin"] is not None else None) for s in body["strata"])
    return SamplePlan(tuple(body["dimensions"]), strata, Decimal(body["margin"]) if body["margin"] else None)


async def propose_plan(conn: AsyncConnection, store: EventStore, campaign: Mapping[str, Any], frame_id: str,
                       meta: Metadata) -> dict[str, Any]:
    frame = (await conn.execute(select(frames).where(frames.c.frame_id == frame_id))).first()
    if frame is None or frame.campaign_id != campaign["campaign_id"] or frame.status != "imported" or frame.stage:
        raise NotFound(f"no imported frame {frame_id} in campaign {campaign['campaign_id']}", "frame_id")
    settings = campaign["definition"].get("sampling") or {}
    dims = [DIMENSIONS[d] for d in settings.get("strata") or ["agency"]]
    columns = [frame_units.c[d] for d in dims]
    stmt = select(*columns, func.count()).where(frame_units.c.frame_id == frame_id).group_by(*columns)
    populations = {tuple(str(v) for v in row[:-1]): int(row[-1]) for row in await conn.execute(stmt)}
    margin = Fraction(str(settings.get("margin", "0.05")))
    rule = (Cochran(margin, Fraction(str(settings.get("z", "1.96"))), Fraction(str(settings.get("p", "0.5"))))
            if settings.get("method") == "cochran" else Slovin(margin))
    plan = plan_by_rule(dims, dict(sorted(populations.items())), rule, floor=int(settings.get("floor_per_unit", 0)),
                        cap=settings.get("cap_per_unit"))
    event = SamplePlanProposed(
        plan_id=str(new_id()), campaign_id=campaign["campaign_id"], frame_id=frame_id, frame_digest=frame.digest,
        province=campaign["province"], method=settings.get("method", "slovin"), dimensions=dims,
        strata=[StratumPlanned(key=list(s.key), population=s.population, sample=s.sample, margin=s.margin)
                for s in plan.strata],
        population=plan.population, sample=plan.sample, margin=plan.margin)
    body = event.payload()
    await conn.execute(insert(plans).values(plan_id=event.plan_id, campaign_id=event.campaign_id, frame_id=frame_id,
                                            status="proposed", body=body, created_at=dt.datetime.now(dt.UTC)))
    await store.append(conn, f"plan-{event.plan_id}", [event], expected_version=0, meta=meta)
    return body | {"status": "proposed"}


async def load_plan(conn: AsyncConnection, plan_id: str) -> Any:
    row = (await conn.execute(select(plans).where(plans.c.plan_id == plan_id).with_for_update())).first()
    if row is None:
        raise NotFound(f"no plan {plan_id}", "plan_id")
    return row


async def approve_plan(conn: AsyncConnection, store: EventStore, plan_id: str, meta: Metadata) -> None:
    row = await load_plan(conn, plan_id)
    if row.status != "proposed":
        raise WrongState(f"plan {plan_id} is already {row.status}", "plan_id")
    await conn.execute(update(plans).where(plans.c.plan_id == plan_id)
                       .values(status="approved", approved_by=meta.actor))
    event = SamplePlanApproved(plan_id=plan_id, campaign_id=row.campaign_id, province=row.body.get("province"))
    await store.append(conn, f"plan-{plan_id}", [event], expected_version=None, meta=meta)


async def commit_draw(conn: AsyncConnection, store: EventStore, plan_id: str, commitment: str,
                      meta: Metadata) -> str:
    row = await load_plan(conn, plan_id)
    if row.status != "approved":
        raise WrongState(f"plan {plan_id} is {row.status}: it must be approved before a draw", "plan_id")
    taken = (await conn.execute(select(draws.c.draw_id).where(draws.c.plan_id == plan_id))).scalar()
    if taken:
        raise WrongState(f"plan {plan_id} already has draw {taken}", "plan_id")
    draw_id = str(new_id())
    await conn.execute(insert(draws).values(draw_id=draw_id, plan_id=plan_id, campaign_id=row.campaign_id,
                                            seed_commitment=commitment, status="committed",
                                            created_at=dt.datetime.now(dt.UTC)))
    event = DrawCommitted(draw_id=draw_id, plan_id=plan_id, campaign_id=row.campaign_id,
                          province=row.body.get("province"), frame_digest=row.body["frame_digest"],
                          seed_commitment=commitment, algorithm_version=ALGORITHM_VERSION)
    await store.append(conn, f"draw-{draw_id}", [event], expected_version=0, meta=meta)
    return draw_id


async def reveal_draw(conn: AsyncConnection, store: EventStore, keys: KeySource, draw_id: str, seed: str,
                      reserve_ratio: str, meta: Metadata) -> dict[str, Any]:
    draw = (await conn.execute(select(draws).where(draws.c.draw_id == draw_id).with_for_update())).first()
    if draw is None or draw.plan_id is None:
        raise NotFound(f"no draw {draw_id} of a plan", "draw_id")
    if draw.status != "committed":
        raise WrongState(f"draw {draw_id} was already revealed", "draw_id")
    check_seed(seed)
    if seed_commitment(seed) != draw.seed_commitment:
        raise InvalidParameter("the seed does not hash to the committed SHA-256", "seed")
    plan_row = await load_plan(conn, draw.plan_id)
    body = plan_row.body
    salt = check_salt(await pseudonym_salt(conn, keys, draw.campaign_id))
    plan = _plan_from(body)
    policy = ReservePolicy.of_ratio(Fraction(reserve_ratio))
    header = DrawHeader(draw_id=draw_id, campaign_id=draw.campaign_id, province=body.get("province"),
                        frame_digest=body["frame_digest"], seed_commitment=draw.seed_commitment, seed=seed,
                        algorithm_version=ALGORITHM_VERSION)
    sample = SampleWriter(conn, store, meta, header, selected=sum(s.sample for s in plan.strata if s.population))
    for stratum in plan.strata:
        if stratum.population:
            await _draw_stratum(conn, sample, plan_row.frame_id, body, stratum, seed, salt, policy)
    await sample.close()
    await conn.execute(update(draws).where(draws.c.draw_id == draw_id).values(seed=seed, status="drawn"))
    return {"draw_id": draw_id, "selected": sample.selected, "reserves": sample.reserves,
            "frame_digest": body["frame_digest"], "algorithm_version": ALGORITHM_VERSION}


async def _draw_stratum(conn: AsyncConnection, sample: SampleWriter, frame_id: str, body: Mapping[str, Any],
                        stratum: StratumPlan, seed: str, salt: bytes, policy: ReservePolicy) -> None:
    """One stratum's sample, then its ordered reserves, fetched ``POSITIONS_CHUNK`` positions at a time."""
    chosen, backups = stratum_picks(stratum, seed, body["frame_digest"], policy)
    picks, name = chosen + backups, label(stratum.key)
    weight = Fraction(stratum.population, stratum.sample) if stratum.sample else Fraction(0)
    decimal_weight = Decimal(weight.numerator) / Decimal(weight.denominator or 1)
    unit_id = unit_ids(salt)
    for start in range(0, len(picks), POSITIONS_CHUNK):
        chunk = picks[start:start + POSITIONS_CHUNK]
        at = await _positions(conn, frame_id, body["dimensions"], stratum.key, chunk)
        for i, position in enumerate(chunk, start):
            row = at[position]
            role: Role = "selected" if i < len(chosen) else "reserve"
            await sample.add(unit_id=unit_id(row.dossier_id), dossier_id=row.dossier_id,
                             agency_code=row.agency_code, agency_id=row.agency_id, stratum=name, role=role,
                             rank=i + 1 if i < len(chosen) else i - len(chosen) + 1, weight=decimal_weight)


async def _positions(conn: AsyncConnection, frame_id: str, dims: list[str], key: tuple[str, ...],
                     positions: list[int]) -> dict[int, Any]:
    """The rows at these positions of one stratum in canonical order, fetched without loading the stratum.

    Canonical order is ``(agency_code, dossier_id)`` by code point (``COLLATE "C"``), exactly the order
    ``draw_sample`` uses, so the service and an offline re-run pick the same rows.
    """
    if not set(dims) <= set(DIMENSIONS.values()):
        raise InvalidParameter(f"unknown stratification dimensions {dims}", "plan")
    if dims == ["agency_code"]:
        # A stratum by agency is one run of consecutive canonical positions: its picks are fetched by
        # key, from the run's first position, without numbering the stratum (NULL: imported before 0007).
        first = (await conn.execute(text(
            'SELECT canonical_pos FROM frame_units WHERE frame_id = :frame AND agency_code COLLATE "C" = :k0 '
            'ORDER BY agency_code COLLATE "C", dossier_id COLLATE "C" LIMIT 1'), {"frame": frame_id, "k0": key[0]})
        ).scalar()
        if first is not None:
            found = {r.pos: r for r in await conn.execute(text(
                "SELECT canonical_pos - :first AS pos, dossier_id, agency_code, agency_id FROM frame_units "
                'WHERE frame_id = :frame AND canonical_pos = ANY(:at) AND agency_code COLLATE "C" = :k0'),
                {"frame": frame_id, "first": first, "at": [first + p for p in positions], "k0": key[0]})}
            if len(found) != len(set(positions)):
                raise FrameMismatch(f"stratum {label(key)} has fewer units than the plan's positions",
                                    field="frame")
            return found
    # agency_code and service_field are NOT NULL: compared bare (and in "C" collation) so the canonical
    # index serves each stratum; level and area may be unknown, which the stratum key spells ''.
    where = " AND ".join(f"{d} COLLATE \"C\" = :k{i}" if d in ("agency_code", "service_field")
                         else f"coalesce({d}, '') = :k{i}" for i, d in enumerate(dims)) or "TRUE"
    sql = text(f"""SELECT pos, dossier_id, agency_code, agency_id FROM (
                     SELECT row_number() OVER (ORDER BY agency_code COLLATE "C", dossier_id COLLATE "C") - 1 AS pos,
                            dossier_id, agency_code, agency_id
                     FROM frame_units WHERE frame_id = :frame AND {where}) ranked
                   WHERE pos = ANY(:positions)""")
    params = {"frame": frame_id, "positions": positions} | {f"k{i}": v for i, v in enumerate(key)}
    return {r.pos: r for r in await conn.execute(sql, params)}


def _sampled(record: Mapping[str, Any]) -> SampledUnit:
    return SampledUnit(unit_id=record["unit_id"], agency_id=record["agency_id"], agency_code=record["agency_code"],
                       stratum=record["stratum"], weight=record["weight"])


async def withdraw(conn: AsyncConnection, store: EventStore, unit_id: str, reason: str, meta: Metadata,
                   province: str | None) -> dict[str, Any]:
    """Take the unit out (erasing its contact on withdrawal) and put the next reserve of its stratum in."""
    su = sample_units.c
    unit = (await conn.execute(select(sample_units, draws.c.campaign_id)
                               .join(draws, draws.c.draw_id == su.draw_id)
                               .where(su.unit_id == unit_id, su.status == "active").with_for_update(of=sample_units))
            ).first()
    if unit is None:
        raise UnitNotActive(f"unit {unit_id} is not an active sampled unit", "unit_id")
    await conn.execute(update(sample_units).where(su.draw_id == unit.draw_id, su.unit_id == unit_id)
                       .values(status="withdrawn"))
    if reason == "withdrawal":  # the respondent asked: their contact goes at once
        await erase_contact(conn, unit.draw_id, unit.dossier_id)
    events: list[Any] = [UnitWithdrawn(draw_id=unit.draw_id, campaign_id=unit.campaign_id, province=province,
                                       unit_id=unit_id, reason=reason)]  # type: ignore[arg-type]
    reserve = (await conn.execute(select(sample_units).where(su.draw_id == unit.draw_id, su.stratum == unit.stratum,
                                                             su.status == "reserve")
                                  .order_by(su.rank).limit(1).with_for_update(skip_locked=True))).first()
    replacement = None
    if reserve is not None:
        await conn.execute(update(sample_units).where(su.draw_id == unit.draw_id, su.unit_id == reserve.unit_id)
                           .values(status="active"))
        replacement = _sampled(dict(reserve._mapping))
        events.append(UnitReplaced(draw_id=unit.draw_id, campaign_id=unit.campaign_id, province=province,
                                   replaced_unit_id=unit_id, replacement=replacement, reason=reason))
    await store.append(conn, f"draw-{unit.draw_id}", events, expected_version=None, meta=meta)
    return {"withdrawn": unit_id, "replacement": replacement.model_dump(mode="json") if replacement else None,
            "note": None if replacement else f"stratum {unit.stratum} has no reserve left"}


async def read_contact(conn: AsyncConnection, keys: KeySource, unit_id: str, actor: str,
                       purpose: str) -> dict[str, Any]:
    su = sample_units.c
    unit = (await conn.execute(select(su.dossier_id, draws.c.campaign_id, CONTACT).select_from(UNITS_WITH_CONTACTS)
                               .where(su.unit_id == unit_id))).first()
    if unit is None:
        raise NotFound(f"no sampled unit {unit_id}", "unit_id")
    await conn.execute(insert(contact_reads).values(campaign_id=unit.campaign_id, unit_id=unit_id, actor=actor,
                                                    purpose=purpose, at=dt.datetime.now(dt.UTC)))
    if unit.contact is None:
        await data_key(conn, keys, unit.campaign_id)  # raises Shredded (410) after the retention end
        raise WrongState(f"unit {unit_id}'s contact was erased (withdrawal or retention end)", "unit_id")
    contact = Sealer(await data_key(conn, keys, unit.campaign_id), unit.campaign_id).open(unit.dossier_id,
                                                                                           bytes(unit.contact))
    return {"unit_id": unit_id, "name": contact.name, "phone": contact.phone, "address": contact.address}


async def shred_campaign(conn: AsyncConnection, store: EventStore, campaign_id: str, province: str | None,
                         reason: str, meta: Metadata) -> int:
    """Crypto-shred: destroy the wrapped key, then drop the now unreadable ciphertexts too."""
    if not await shred(conn, campaign_id):
        return 0
    rows = await erase_campaign(conn, campaign_id)
    event = PersonalDataShredded(campaign_id=campaign_id, province=province, reason=reason, rows=rows)  # type: ignore[arg-type]
    await store.append(conn, f"retention-{campaign_id}", [event], expected_version=0, meta=meta)
    return rows


async def adjust_weights(conn: AsyncConnection, store: EventStore, draw_id: str, meta: Metadata) -> dict[str, Any]:
    """Non-response adjustment within strata from the responses known now; each call is a new revision."""
    draw = (await conn.execute(select(draws).where(draws.c.draw_id == draw_id).with_for_update())).first()
    if draw is None or draw.status != "drawn" or draw.stage not in (None, "households"):
        raise NotFound(f"no revealed draw {draw_id} of a sample", "draw_id")
    province, population, scale = await _strata(conn, draw)
    counts = (await conn.execute(text(
        "SELECT su.stratum, count(*) FILTER (WHERE su.role = 'selected') AS sampled, "
        "count(r.unit_id) FILTER (WHERE su.status = 'active' AND NOT r.voided) AS responded "
        "FROM sample_units su LEFT JOIN responses r ON r.unit_id = su.unit_id "
        "WHERE su.draw_id = :d GROUP BY su.stratum ORDER BY su.stratum"), {"d": draw_id})).all()
    strata = []
    for stratum, sampled, responded in counts:
        if not sampled:
            continue
        w = stratum_weight(StratumOutcome((stratum,), population[stratum], sampled, responded))
        factor = scale.get(stratum, Fraction(1))
        strata.append(StratumWeights(
            stratum=stratum, population=population[stratum], sampled=sampled, responded=responded,
            design_weight=_decimal(w.design * factor) or Decimal(0), adjustment=_decimal(w.adjustment),
            final_weight=_decimal(None if w.final is None else w.final * factor)))
    revision = 1 + sum(1 for _ in await store.load(conn, f"weights-{draw_id}"))
    event = WeightsAdjusted(draw_id=draw_id, campaign_id=draw.campaign_id, province=province,
                            revision=revision, strata=strata)
    await store.append(conn, f"weights-{draw_id}", [event], expected_version=revision - 1, meta=meta)
    return event.payload()


async def _strata(conn: AsyncConnection, draw: Any) -> tuple[str | None, dict[str, int], dict[str, Fraction]]:
    """Province, units per stratum, and the factor that turns N_h/n_h into the design weight.

    Frame design: a stratum of the plan, design weight N_h/n_h. Resident design: a stratum is a village
    (``commune/village``) with N_h households listed; its households' design weight 1/π is N_h/n_h times
    1/π_village, the village's own weight (village codes hold no '/').
    """
    if draw.plan_id is not None:
        plan = (await load_plan(conn, draw.plan_id)).body
        return plan.get("province"), {label(tuple(s["key"])): s["population"] for s in plan["strata"]}, {}
    villages = {r.parent_code: r for r in await conn.execute(
        select(stage_parents).where(stage_parents.c.draw_id == draw.draw_id))}
    labels = (await conn.execute(select(sample_units.c.stratum).where(sample_units.c.draw_id == draw.draw_id)
                                 .distinct())).scalars()
    population, scale = {}, {}
    for stratum in labels:
        village = villages[stratum.rsplit("/", 1)[-1]]
        population[stratum], scale[stratum] = village.units, 1 / Fraction(village.inclusion)
    province = (await conn.execute(text("SELECT settings->>'province' FROM resident_rounds WHERE round_id = :r"),
                                   {"r": draw.round_id})).scalar()
    return province, population, scale


def _decimal(value: Fraction | None) -> Decimal | None:
    return None if value is None else Decimal(value.numerator) / Decimal(value.denominator)
