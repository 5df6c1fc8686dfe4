"""One validation path for every channel: load what the rules need, decide, record the outcome.

The ballot row is locked (``FOR UPDATE``) before deciding, so a code submitted many times at once is
accepted exactly once; every other attempt is recorded as ``used_code``. A rejection stores only its
record (reason, detail, channel) and a ``BallotRejected`` event — never the answers.
"""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_ballots.adapters.tables import accepted, ballots, reference, sampled_units, submissions
from sipas_ballots.domain.codes import parse_code
from sipas_ballots.domain.errors import InvalidCode
from sipas_ballots.domain.instrument import Instrument
from sipas_ballots.domain.issuance import Ballot, Status
from sipas_ballots.domain.validation import (
    Accepted,
    CampaignRules,
    Outcome,
    Rejected,
    Submission,
    ValidationContext,
    validate,
)
from sipas_ballots.metrics import intake_outcomes
from sipas_events.catalogue.ballots import BallotAccepted, BallotRejected
from sipas_events.catalogue.registry import InstrumentDefinition, SchemeDefinition
from sipas_events.ids import new_id
from sipas_events.store import EventStore, Metadata

CODE_REASONS = {"unknown_code", "cancelled_code", "used_code", "wrong_campaign"}
VIETNAM = dt.timezone(dt.timedelta(hours=7), "ICT")  # no daylight saving: a fixed offset is exact


def today_in_vietnam() -> dt.date:
    return dt.datetime.now(VIETNAM).date()


async def _definition(conn: AsyncConnection, kind: str, ref: dict[str, Any]) -> dict[str, Any] | None:
    d = reference.definitions.c
    return (await conn.execute(select(d.definition).where(d.kind == kind, d.def_id == ref["id"],
                                                          d.version == ref["version"]))).scalar()


async def _context(conn: AsyncConnection, sub: Submission, campaign: Any, ballot: Ballot | None,
                   unit: Any) -> ValidationContext | Rejected:
    if campaign is None:
        return Rejected("wrong_campaign", f"no campaign {sub.campaign_id} is known here", "campaign_id")
    body = campaign["definition"]
    instrument = await _definition(conn, "instrument", body["instrument"])
    scheme = await _definition(conn, "scheme", body["scheme"])
    if instrument is None or scheme is None:
        return Rejected("wrong_campaign", "the campaign's instrument or scheme has not reached this service yet",
                        "campaign_id")
    window = body["collection_window"]
    rules = CampaignRules(sub.campaign_id, dt.date.fromisoformat(window["start"]), dt.date.fromisoformat(window["end"]),
                          Fraction(str(SchemeDefinition.model_validate(scheme).min_answered_share)))
    active = frozenset({unit.unit_id}) if unit is not None and unit.status == "active" else frozenset()
    return ValidationContext(rules, Instrument.from_definition(InstrumentDefinition.model_validate(instrument)),
                             {ballot.code: ballot} if ballot else {}, active)


async def submit(conn: AsyncConnection, store: EventStore, sub: Submission, meta: Metadata,
                 metrics: Any = None) -> tuple[str, Outcome]:
    ballot = None
    try:
        row = (await conn.execute(select(ballots).where(ballots.c.code == parse_code(sub.code)).with_for_update())
               ).first()
    except InvalidCode:
        row = None
    unit = None
    if row is not None:
        ballot = Ballot(row.ballot_id, row.campaign_id, row.unit_id, row.code, Status(row.status), row.cancel_reason)
        unit = (await conn.execute(select(sampled_units).where(sampled_units.c.unit_id == ballot.unit_id))).first()
    # Campaign and unit are read once, for the rules and for the events alike.
    campaign = (await conn.execute(select(reference.campaigns).where(
        reference.campaigns.c.campaign_id == sub.campaign_id))).mappings().first()
    context = await _context(conn, sub, campaign, ballot, unit)
    if isinstance(context, ValidationContext):
        outcome = validate(sub, context)
    else:  # the campaign is unusable here, but code problems still come first (the documented order)
        bare = ValidationContext(CampaignRules(sub.campaign_id, dt.date.min, dt.date.max), Instrument((), frozenset()),
                                 {ballot.code: ballot} if ballot else {}, frozenset())
        first = validate(sub, bare)
        code_problem = isinstance(first, Rejected) and first.reason_code in CODE_REASONS
        outcome = first if code_problem else context
    submission_id = str(new_id())
    now = dt.datetime.now(dt.UTC)
    province = campaign["province"] if campaign is not None else None
    if isinstance(outcome, Accepted):
        assert unit is not None and unit.unit_id == outcome.ballot.unit_id  # accepted only with its active unit
        await conn.execute(update(ballots).where(ballots.c.ballot_id == outcome.ballot.ballot_id).values(status="used"))
        await conn.execute(insert(accepted).values(
            ballot_id=outcome.ballot.ballot_id, campaign_id=sub.campaign_id, unit_id=unit.unit_id, channel=sub.channel,
            answers=dict(outcome.answers), expectations=sorted(outcome.expectations), entered_by=sub.entered_by,
            entry_seconds=sub.entry_seconds, accepted_at=now))
        await conn.execute(insert(submissions).values(
            submission_id=submission_id, campaign_id=sub.campaign_id, channel=sub.channel, outcome="accepted",
            ballot_id=outcome.ballot.ballot_id, received_at=now))
        await store.append(conn, f"ballot-{outcome.ballot.ballot_id}", [BallotAccepted(
            ballot_id=outcome.ballot.ballot_id, campaign_id=sub.campaign_id, unit_id=unit.unit_id,
            agency_id=unit.agency_id, stratum=unit.stratum, weight_ref=unit.draw_id, province=province,
            channel=sub.channel, answers=dict(outcome.answers), expectations=sorted(outcome.expectations))],
            expected_version=None, meta=meta)
        _count(metrics, sub, "accepted", "")
        return submission_id, outcome
    await conn.execute(insert(submissions).values(
        submission_id=submission_id, campaign_id=sub.campaign_id, channel=sub.channel, outcome="rejected",
        reason=outcome.reason_code, detail=outcome.detail, ballot_id=ballot.ballot_id if ballot else None,
        received_at=now))
    await store.append(conn, f"submission-{submission_id}", [BallotRejected(
        submission_id=submission_id, campaign_id=sub.campaign_id, province=province, channel=sub.channel,
        reason=outcome.reason_code, detail=outcome.detail, field=outcome.field)], expected_version=0, meta=meta)
    _count(metrics, sub, "rejected", outcome.reason_code)
    return submission_id, outcome


def _count(metrics: Any, sub: Submission, outcome: str, reason: str) -> None:
    # Counted before commit: a transaction that then fails over-counts by one, never under-counts.
    if metrics is not None:
        intake_outcomes(metrics).labels(sub.campaign_id, sub.channel, outcome, reason).inc()
