"""Double entry of paper ballots: two clerks key each ballot blind; agreement goes straight to the
validation path, disagreement waits for an adjudicator who keyed neither; only the settled version
is ever submitted, so only it can be counted."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_ballots.adapters.tables import ballots, paper_keyings, paper_status, reference, submissions
from sipas_ballots.application.intake import submit, today_in_vietnam
from sipas_ballots.domain.double_entry import Agreed, Keying, PaperBallot, adjudicate, compare
from sipas_ballots.domain.errors import BallotsError, NotAllowed
from sipas_ballots.domain.validation import Accepted, Submission
from sipas_events.store import EventStore, Metadata


class AlreadyKeyedTwice(BallotsError):
    """Both keyings of this ballot exist; a third would not be blind."""


def _ballot(doc: dict[str, Any], code: str) -> PaperBallot:
    return PaperBallot(code=code, answers=doc["answers"], expectations=frozenset(doc["expectations"]),
                       not_applicable_factors=frozenset(doc["not_applicable_factors"]))


def _doc(b: PaperBallot) -> dict[str, Any]:
    return {"answers": dict(b.answers), "expectations": sorted(b.expectations),
            "not_applicable_factors": sorted(b.not_applicable_factors)}


async def _keyings(conn: AsyncConnection, code: str) -> list[Keying]:
    rows = (await conn.execute(select(paper_keyings).where(paper_keyings.c.code == code)
                               .order_by(paper_keyings.c.seq))).all()
    return [Keying(r.clerk, _ballot(r.ballot, code), r.entry_seconds) for r in rows]


async def _submit(conn: AsyncConnection, store: EventStore, campaign_id: str, ballot: PaperBallot, keyed_by: str,
                  entry_seconds: float | None, meta: Metadata) -> dict[str, Any]:
    sub = Submission(code=ballot.code, campaign_id=campaign_id, received_on=today_in_vietnam(),
                     answers=ballot.answers, channel="paper", expectations=ballot.expectations, entered_by=keyed_by,
                     entry_seconds=entry_seconds, not_applicable_factors=ballot.not_applicable_factors)
    _, outcome = await submit(conn, store, sub, meta)
    if isinstance(outcome, Accepted):
        return {"outcome": "accepted", "ballot_id": outcome.ballot.ballot_id}
    return {"outcome": "rejected", "reason": outcome.reason_code, "detail": outcome.detail}


async def key(conn: AsyncConnection, store: EventStore, campaign_id: str, clerk: str, ballot: PaperBallot,
              entry_seconds: float | None, meta: Metadata) -> dict[str, Any]:
    c = reference.campaigns.c
    province = (await conn.execute(select(c.province).where(c.campaign_id == campaign_id))).scalar()
    await conn.execute(pg_insert(paper_status).values(code=ballot.code, campaign_id=campaign_id, province=province,
                                                      status="keyed_once").on_conflict_do_nothing())
    state = (await conn.execute(select(paper_status).where(paper_status.c.code == ballot.code).with_for_update())).one()
    done = await _keyings(conn, ballot.code)
    if any(k.clerk_id == clerk and k.ballot == ballot for k in done):
        # The same clerk sending the same keying again: a retry after a lost answer (a dropped connection, a
        # restart). Answer what the first one did, so the clerk is not told to find another clerk or that
        # the ballot was keyed twice when it is their own keying that counted.
        return await _as_recorded(conn, ballot.code, state) | {"replayed": True}
    if len(done) >= 2:
        raise AlreadyKeyedTwice(f"ballot {ballot.code} was keyed twice already ({state.status})", "code")
    if done and done[0].clerk_id == clerk:
        raise NotAllowed("you keyed this ballot already: the second keying must be another clerk's", "code")
    await conn.execute(insert(paper_keyings).values(code=ballot.code, seq=len(done) + 1, campaign_id=campaign_id,
                                                    clerk=clerk, ballot=_doc(ballot), entry_seconds=entry_seconds,
                                                    keyed_at=dt.datetime.now(dt.UTC)))
    if not done:
        return {"code": ballot.code, "status": "keyed_once"}
    outcome = compare(done[0], Keying(clerk, ballot, entry_seconds))
    if isinstance(outcome, Agreed):
        result = await _submit(conn, store, campaign_id, outcome.ballot, done[0].clerk_id, done[0].entry_seconds, meta)
        await conn.execute(update(paper_status).where(paper_status.c.code == ballot.code)
                           .values(status="settled", settled_by="agreement", outcome=result["outcome"]))
        return {"code": ballot.code, "status": "settled"} | result
    disagreements = [{"field": d.field, "first": _plain(d.first), "second": _plain(d.second)}
                     for d in outcome.disagreements]
    await conn.execute(update(paper_status).where(paper_status.c.code == ballot.code)
                       .values(status="disputed", disagreements=disagreements))
    return {"code": ballot.code, "status": "disputed", "disagreements": disagreements}


async def _as_recorded(conn: AsyncConnection, code: str, state: Any) -> dict[str, Any]:
    """A keying's answer as recorded: waiting for the second keying, disputed, or settled with its outcome."""
    if state.status != "settled":
        extra = {"disagreements": state.disagreements} if state.status == "disputed" else {}
        return {"code": code, "status": state.status} | extra
    found = (await conn.execute(
        select(submissions.c.outcome, submissions.c.reason, submissions.c.detail, submissions.c.ballot_id)
        .join(ballots, ballots.c.ballot_id == submissions.c.ballot_id)
        .where(ballots.c.code == code, submissions.c.channel == "paper")
        .order_by(submissions.c.received_at.desc()).limit(1))).first()
    if found is None or found.outcome == "accepted":
        return {"code": code, "status": "settled", "outcome": "accepted",
                "ballot_id": None if found is None else found.ballot_id}
    return {"code": code, "status": "settled", "outcome": "rejected", "reason": found.reason, "detail": found.detail}


def _plain(value: object) -> object:
    return sorted(value) if isinstance(value, frozenset | set) else value


async def resolve(conn: AsyncConnection, store: EventStore, code: str, adjudicator: str, choices: dict[str, Any],
                  meta: Metadata) -> dict[str, Any]:
    state = (await conn.execute(select(paper_status).where(paper_status.c.code == code).with_for_update())).first()
    if state is None or state.status != "disputed":
        raise BallotsError(f"ballot {code} has no open disagreement", "code")
    first, second = await _keyings(conn, code)
    settled = {k: frozenset(v) if k in ("expectations", "not_applicable_factors") else v for k, v in choices.items()}
    final = adjudicate(first, second, adjudicator, settled)
    result = await _submit(conn, store, state.campaign_id, final, first.clerk_id, first.entry_seconds, meta)
    await conn.execute(update(paper_status).where(paper_status.c.code == code)
                       .values(status="settled", settled_by=adjudicator, outcome=result["outcome"]))
    return {"code": code, "status": "settled"} | result
