"""Quality: flags (never rejections), the review queue (province first, then ministry), voiding,
and back-checks (phúc tra) with their consequences. Every review action is logged with its reason."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_ballots.adapters.tables import accepted, backchecks, ballot_flags, reference, review_log, sampled_units
from sipas_ballots.domain.backcheck import AcceptedBallot, BackcheckResult, decide_backcheck, select_backchecks
from sipas_ballots.domain.errors import BallotsError, NotAllowed, UnknownBallot
from sipas_ballots.domain.quality import Flag, KeyedAnswers, alone_flags, median_seconds, near_identical
from sipas_events.catalogue.ballots import BackcheckRecorded, BallotVoided
from sipas_events.store import EventStore, Metadata


async def _open_ballots(conn: AsyncConnection, campaign_id: str, enumerator: str | None = None) -> list[Any]:
    """The campaign's open ballots (or one enumerator's): their ids and who entered them, nothing more."""
    where = [accepted.c.campaign_id == campaign_id, accepted.c.voided.is_(False)]
    if enumerator is not None:
        where.append(accepted.c.entered_by == enumerator)
    return list((await conn.execute(select(accepted.c.ballot_id, accepted.c.entered_by).where(*where))).all())


async def _flag(conn: AsyncConnection, campaign_id: str, ballot_id: str, kind: str, reason: str) -> int:
    result = await conn.execute(pg_insert(ballot_flags).values(
        ballot_id=ballot_id, campaign_id=campaign_id, kind=kind, reason=reason, status="open", level="province",
    ).on_conflict_do_nothing())
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


_RAISE = text(
    "INSERT INTO ballot_flags (ballot_id, campaign_id, kind, reason, status, level)"
    " SELECT b, CAST(:campaign_id AS text), k, r, 'open', 'province'"
    " FROM unnest(CAST(:ballot_ids AS text[]), CAST(:kinds AS text[]), CAST(:reasons AS text[])) AS t(b, k, r)"
    " ON CONFLICT DO NOTHING RETURNING kind"
)
_FLAGS_A_STATEMENT = 5000
_ROWS_A_FETCH = 2000


async def scan(conn: AsyncConnection, campaign_id: str) -> dict[str, int]:
    """Flag straight-lining, speeders (under half the channel's median entry time) and near-identical
    ballots from one enumerator. Idempotent: a flag is raised once per ballot and kind.

    Holds no more than one enumerator's ballots at a time, whatever the campaign's size: the entry
    times (for the medians) and the items answered are read first, then the open ballots stream in
    enumerator order, each checked alone and each enumerator's together; the flags are raised with
    a statement per few thousand. The same flags as checking every ballot at once
    (:func:`domain.quality.scan_flags`, tested)."""
    open_ = (accepted.c.campaign_id == campaign_id) & accepted.c.voided.is_(False)
    times: dict[str, list[float]] = defaultdict(list)
    for channel, seconds in await conn.execute(select(accepted.c.channel, accepted.c.entry_seconds).where(
            open_, accepted.c.entry_seconds.is_not(None))):
        times[channel].append(seconds)
    medians = {channel: median_seconds(values) for channel, values in times.items()}
    del times
    items = sorted((await conn.execute(select(func.jsonb_object_keys(accepted.c.answers)).where(open_)
                                       .distinct())).scalars())
    raised: list[tuple[str, Flag]] = []
    group: list[KeyedAnswers] = []
    stream = await conn.stream(select(accepted.c.ballot_id, accepted.c.channel, accepted.c.entry_seconds,
                                      accepted.c.entered_by, accepted.c.answers)
                               .where(open_).order_by(accepted.c.entered_by, accepted.c.ballot_id)
                               .execution_options(yield_per=_ROWS_A_FETCH))
    async for r in stream:
        raised += [(r.ballot_id, f) for f in alone_flags(r.answers, r.entry_seconds, medians.get(r.channel))]
        if group and group[0].enumerator_id != r.entered_by:
            raised += near_identical(group, items).items()
            group = []
        if r.entered_by:
            group.append(KeyedAnswers(r.ballot_id, r.entered_by, r.answers))
    if group:
        raised += near_identical(group, items).items()
    counts: Counter[str] = Counter()
    for start in range(0, len(raised), _FLAGS_A_STATEMENT):
        part = raised[start:start + _FLAGS_A_STATEMENT]
        counts.update((await conn.execute(_RAISE, {
            "campaign_id": campaign_id, "ballot_ids": [b for b, _ in part], "kinds": [f.kind for _, f in part],
            "reasons": [f.reason for _, f in part]})).scalars())
    return dict(counts)


async def queue(conn: AsyncConnection, campaign_id: str, level: str) -> list[dict[str, Any]]:
    stmt = (select(ballot_flags, accepted.c.entered_by)
            .join(accepted, accepted.c.ballot_id == ballot_flags.c.ballot_id)
            .where(ballot_flags.c.campaign_id == campaign_id, ballot_flags.c.status == "open",
                   ballot_flags.c.level == level)
            .order_by(ballot_flags.c.ballot_id, ballot_flags.c.kind))
    return [dict(r) for r in (await conn.execute(stmt)).mappings()]


async def void(conn: AsyncConnection, store: EventStore, ballot_id: str, reason: str, meta: Metadata) -> None:
    row = (await conn.execute(select(accepted).where(accepted.c.ballot_id == ballot_id).with_for_update())).first()
    if row is None:
        raise UnknownBallot(f"no accepted ballot {ballot_id}", "ballot_id")
    if row.voided:
        return
    await conn.execute(update(accepted).where(accepted.c.ballot_id == ballot_id).values(voided=True))
    await conn.execute(update(ballot_flags).where(ballot_flags.c.ballot_id == ballot_id).values(status="voided"))
    province = (await conn.execute(select(reference.campaigns.c.province).where(
        reference.campaigns.c.campaign_id == row.campaign_id))).scalar()
    await store.append(conn, f"ballot-{ballot_id}", [BallotVoided(
        ballot_id=ballot_id, campaign_id=row.campaign_id, province=province, reason=reason)],
        expected_version=None, meta=meta)


async def review(conn: AsyncConnection, store: EventStore, ballot_id: str, action: str, comment: str, national: bool,
                 meta: Metadata) -> dict[str, Any]:
    """``clear`` closes the ballot's open flags at the reviewer's level, ``escalate`` sends them to the
    ministry, ``void`` removes the ballot from every index. A province reviews first; the ministry
    reviews what was escalated (and may act on anything)."""
    flags = (await conn.execute(select(ballot_flags).where(ballot_flags.c.ballot_id == ballot_id,
                                                           ballot_flags.c.status == "open").with_for_update())).all()
    if not flags:
        raise BallotsError(f"ballot {ballot_id} has nothing open to review", "ballot_id")
    if not national and any(f.level != "province" for f in flags):
        raise NotAllowed("this ballot was escalated to the ministry", "ballot_id")
    if action == "escalate" and national:
        raise BallotsError("the ministry is the last level: clear or void", "action")
    if action == "clear":
        await conn.execute(update(ballot_flags).where(ballot_flags.c.ballot_id == ballot_id,
                                                      ballot_flags.c.status == "open").values(status="cleared"))
    elif action == "escalate":
        await conn.execute(update(ballot_flags).where(ballot_flags.c.ballot_id == ballot_id,
                                                      ballot_flags.c.status == "open").values(level="ministry"))
    else:
        await void(conn, store, ballot_id, f"review: {comment}", meta)
    await conn.execute(insert(review_log).values(ballot_id=ballot_id, campaign_id=flags[0].campaign_id,
                                                 actor=meta.actor, action=action, comment=comment,
                                                 at=dt.datetime.now(dt.UTC)))
    return {"ballot_id": ballot_id, "action": action}


async def draw_backchecks(conn: AsyncConnection, campaign_id: str, seed: str) -> dict[str, int]:
    taken = (await conn.execute(select(func.count()).select_from(backchecks).where(
        backchecks.c.campaign_id == campaign_id))).scalar_one()
    if taken:
        raise BallotsError(f"the back-checks of campaign {campaign_id} were drawn already", "campaign_id")
    rows = [AcceptedBallot(r.ballot_id, r.entered_by) for r in await _open_ballots(conn, campaign_id) if r.entered_by]
    picks = select_backchecks(rows, seed, campaign_id)
    for enumerator, ballot_ids in picks.items():
        for rank, ballot_id in enumerate(ballot_ids, 1):
            await conn.execute(insert(backchecks).values(ballot_id=ballot_id, campaign_id=campaign_id,
                                                         enumerator=enumerator, rank=rank))
    return {e: len(b) for e, b in picks.items()}


async def worksheet(conn: AsyncConnection, campaign_id: str) -> list[dict[str, Any]]:
    stmt = (select(backchecks.c.ballot_id, backchecks.c.enumerator, backchecks.c.rank, backchecks.c.outcome,
                   accepted.c.unit_id, sampled_units.c.agency_code)
            .join(accepted, accepted.c.ballot_id == backchecks.c.ballot_id)
            .join(sampled_units, sampled_units.c.unit_id == accepted.c.unit_id)
            .where(backchecks.c.campaign_id == campaign_id).order_by(backchecks.c.enumerator, backchecks.c.rank))
    return [dict(r) for r in (await conn.execute(stmt)).mappings()]


async def record_backcheck(conn: AsyncConnection, store: EventStore, ballot_id: str, outcome: str,
                           meta: Metadata) -> dict[str, Any]:
    check = (await conn.execute(select(backchecks).where(backchecks.c.ballot_id == ballot_id)
                                .with_for_update())).first()
    if check is None:
        raise UnknownBallot(f"ballot {ballot_id} was not drawn for a back-check", "ballot_id")
    theirs = [r.ballot_id for r in await _open_ballots(conn, check.campaign_id, check.enumerator)]
    decision = decide_backcheck(BackcheckResult(ballot_id, check.enumerator, outcome), theirs)  # type: ignore[arg-type]
    await conn.execute(update(backchecks).where(backchecks.c.ballot_id == ballot_id)
                       .values(outcome=outcome, recorded_by=meta.actor))
    province = (await conn.execute(select(reference.campaigns.c.province).where(
        reference.campaigns.c.campaign_id == check.campaign_id))).scalar()
    await store.append(conn, f"backcheck-{ballot_id}", [BackcheckRecorded(
        ballot_id=ballot_id, campaign_id=check.campaign_id, enumerator_id=check.enumerator, province=province,
        outcome=outcome)], expected_version=None, meta=meta)  # type: ignore[arg-type]
    for voided in decision.void:
        await void(conn, store, voided, decision.reason or "back-check", meta)
    for other in decision.review:
        await _flag(conn, check.campaign_id, other, "enumerator_review", decision.reason or "back-check")
    return {"ballot_id": ballot_id, "outcome": outcome, "voided": list(decision.void),
            "under_review": len(decision.review)}


async def enumerators(conn: AsyncConnection, campaign_id: str) -> list[dict[str, Any]]:
    """Per enumerator: accepted, voided, flagged, back-checked and fabricated — and the error rate."""
    out: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    # Counted by the server: a national campaign's ballots never cross (3.3 GB at a million, read whole).
    for enumerator, count, voided in await conn.execute(
            select(accepted.c.entered_by, func.count(), func.count().filter(accepted.c.voided))
            .where(accepted.c.campaign_id == campaign_id).group_by(accepted.c.entered_by)):
        stats = out[enumerator or "(online)"]
        stats["accepted"] += int(count)
        stats["voided"] += int(voided)
    flags = (await conn.execute(select(accepted.c.entered_by, func.count(func.distinct(ballot_flags.c.ballot_id)))
                                .join(accepted, accepted.c.ballot_id == ballot_flags.c.ballot_id)
                                .where(ballot_flags.c.campaign_id == campaign_id).group_by(accepted.c.entered_by)))
    for enumerator, n in flags:
        out[enumerator or "(online)"]["flagged"] = n
    for r in (await conn.execute(select(backchecks).where(backchecks.c.campaign_id == campaign_id))).all():
        out[r.enumerator]["backchecked"] += int(r.outcome is not None)
        out[r.enumerator]["fabricated"] += int(r.outcome == "fabricated")
    keys = ("accepted", "voided", "flagged", "backchecked", "fabricated")
    return [{"enumerator": e, **{k: s.get(k, 0) for k in keys},
             "error_rate": (s.get("fabricated", 0) / s["backchecked"]) if s.get("backchecked") else None}
            for e, s in sorted(out.items())]
