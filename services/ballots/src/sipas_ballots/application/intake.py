"""One validation path for every channel: load what the rules need, decide, record the outcome.

The ballot row is locked (``FOR UPDATE``) before deciding, so a code submitted many times at once is
accepted exactly once; every other attempt is recorded as ``used_code``. A rejection stores only its
record (reason, detail, channel) and a ``BallotRejected`` event — never the answers.

The online path is hot (every respondent, every keyed ballot): a submission is one statement to read
(the ballot locked, its unit, the campaign), one to write (the ballot's status, the accepted ballot,
the submission record) and the event's append. Instrument and scheme definitions are read once per
process and database (a published version never changes). Bulk imports (``imports``) decide a whole
file with the same ``decide`` and write it set-wise.
"""

from __future__ import annotations

import datetime as dt
import json
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_ballots.adapters.tables import reference
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
from sipas_events.store import ConcurrencyError, EventStore, Metadata

CODE_REASONS = {"unknown_code", "cancelled_code", "used_code", "wrong_campaign"}
VIETNAM = dt.timezone(dt.timedelta(hours=7), "ICT")  # no daylight saving: a fixed offset is exact


def today_in_vietnam() -> dt.date:
    return dt.datetime.now(VIETNAM).date()


@dataclass(frozen=True)
class Unit:
    """What a decision and its event need of a ballot's sampled unit."""

    unit_id: str
    status: str
    agency_id: str | None
    stratum: str
    draw_id: str


@dataclass(frozen=True)
class CampaignFacts:
    """A campaign as the rules see it, read once per command: its province (for the events) and either
    its rules and instrument or why it cannot take ballots here (``problem``)."""

    campaign_id: str
    province: str | None
    rules: CampaignRules | None = None
    instrument: Instrument | None = None
    problem: Rejected | None = None


# (kind, id, version) -> Instrument, or the scheme's minimum answered share; per database (engine).
_DEFINITIONS: weakref.WeakKeyDictionary[Engine, dict[tuple[str, str, int], Any]] = weakref.WeakKeyDictionary()
_DEFINITION = text("SELECT definition FROM ref_definitions WHERE kind = :kind AND def_id = :id AND version = :version"
                   ).columns(definition=JSONB)


async def _definition(conn: AsyncConnection, kind: str, ref: dict[str, Any]) -> Any:
    """The instrument (built) or the scheme's minimum share of a published version; None if not known yet.
    A published version never changes, so what was found is kept for the life of the engine."""
    cache = _DEFINITIONS.setdefault(conn.engine.sync_engine, {})
    key = (kind, str(ref["id"]), int(ref["version"]))
    if key in cache:
        return cache[key]
    found = (await conn.execute(_DEFINITION, {"kind": kind, "id": key[1], "version": key[2]})).scalar()
    if found is None:
        return None
    built: Any = (Instrument.from_definition(InstrumentDefinition.model_validate(found)) if kind == "instrument"
                  else Fraction(str(SchemeDefinition.model_validate(found).min_answered_share)))
    cache[key] = built
    return built


async def campaign_facts(conn: AsyncConnection, campaign_id: str, row: Any) -> CampaignFacts:
    """``row``: the campaign's reference row (``province``, ``definition``), or None if unknown here."""
    if row is None:
        return CampaignFacts(campaign_id, None, problem=Rejected(
            "wrong_campaign", f"no campaign {campaign_id} is known here", "campaign_id"))
    body = row["definition"]
    instrument = await _definition(conn, "instrument", body["instrument"])
    share = await _definition(conn, "scheme", body["scheme"])
    if instrument is None or share is None:
        return CampaignFacts(campaign_id, row["province"], problem=Rejected(
            "wrong_campaign", "the campaign's instrument or scheme has not reached this service yet", "campaign_id"))
    window = body["collection_window"]
    rules = CampaignRules(campaign_id, dt.date.fromisoformat(window["start"]), dt.date.fromisoformat(window["end"]),
                          share)
    return CampaignFacts(campaign_id, row["province"], rules, instrument)


async def load_campaign(conn: AsyncConnection, campaign_id: str) -> CampaignFacts:
    c = reference.campaigns.c
    row = (await conn.execute(select(c.province, c.definition).where(c.campaign_id == campaign_id))).mappings().first()
    return await campaign_facts(conn, campaign_id, row)


class Decider:
    """Decides submissions to one campaign: ``ballots`` holds (at least) the ballots their codes name
    (a mapping the caller may update between decisions), ``active_units`` the active units among theirs."""

    def __init__(self, campaign: CampaignFacts, ballots: Mapping[str, Ballot], active_units: frozenset[str]) -> None:
        self.campaign = campaign
        if campaign.rules is not None and campaign.instrument is not None:
            self.context = ValidationContext(campaign.rules, campaign.instrument, ballots, active_units)
        else:  # the campaign is unusable here: only the code checks can say something first
            self.context = ValidationContext(CampaignRules(campaign.campaign_id, dt.date.min, dt.date.max),
                                             Instrument((), frozenset()), ballots, frozenset())

    def __call__(self, sub: Submission) -> Outcome:
        outcome = validate(sub, self.context)
        if self.campaign.problem is None:
            return outcome
        # The campaign is unusable here, but code problems still come first (the documented order).
        code_problem = isinstance(outcome, Rejected) and outcome.reason_code in CODE_REASONS
        return outcome if code_problem else self.campaign.problem


# One round trip to read all a submission needs: the ballot (locked), its unit and the campaign (only the
# parts of its definition the rules need: a national campaign's target list runs to thousands of ids).
_LOOKUP = text("""
    WITH b AS MATERIALIZED (
        SELECT ballot_id, campaign_id, unit_id, code, status, cancel_reason FROM ballots
        WHERE code = :code FOR UPDATE
    )
    SELECT b.ballot_id, b.campaign_id AS ballot_campaign, b.unit_id, b.code, b.status, b.cancel_reason,
           u.unit_id AS unit_found, u.status AS unit_status, u.agency_id, u.stratum, u.draw_id,
           c.campaign_id AS campaign_found, c.province,
           jsonb_build_object('instrument', c.definition -> 'instrument', 'scheme', c.definition -> 'scheme',
                              'collection_window', c.definition -> 'collection_window') AS definition
    FROM (SELECT) AS one
    LEFT JOIN b ON true
    LEFT JOIN sampled_units u ON u.unit_id = b.unit_id
    LEFT JOIN ref_campaigns c ON c.campaign_id = :campaign_id
""").columns(definition=JSONB)
# One round trip to record an acceptance: the ballot used, the accepted ballot, the submission record.
_ACCEPT = text("""
    WITH used AS (
        UPDATE ballots SET status = 'used' WHERE ballot_id = :ballot_id
    ), kept AS (
        INSERT INTO accepted_ballots (ballot_id, campaign_id, unit_id, channel, answers, expectations, entered_by,
                                      entry_seconds, accepted_at)
        VALUES (:ballot_id, :campaign_id, :unit_id, :channel, CAST(:answers AS jsonb), CAST(:expectations AS jsonb),
                :entered_by, CAST(:entry_seconds AS double precision), :now)
    )
    INSERT INTO submissions (submission_id, campaign_id, channel, outcome, ballot_id, received_at)
    VALUES (:submission_id, :campaign_id, :channel, 'accepted', :ballot_id, :now)
""")
_REJECT = text("""
    INSERT INTO submissions (submission_id, campaign_id, channel, outcome, reason, detail, ballot_id, received_at)
    VALUES (:submission_id, :campaign_id, :channel, 'rejected', :reason, :detail, :ballot_id, :now)
""")


def unit_of(row: Any) -> Unit | None:
    if row.unit_found is None:
        return None
    return Unit(row.unit_found, row.unit_status, row.agency_id, row.stratum, row.draw_id)


def accepted_event(sub: Submission, outcome: Accepted, unit: Unit, province: str | None) -> BallotAccepted:
    return BallotAccepted(
        ballot_id=outcome.ballot.ballot_id, campaign_id=sub.campaign_id, unit_id=unit.unit_id,
        agency_id=unit.agency_id, stratum=unit.stratum, weight_ref=unit.draw_id, province=province,
        channel=sub.channel, answers=dict(outcome.answers), expectations=sorted(outcome.expectations))


def rejected_event(sub: Submission, outcome: Rejected, submission_id: str, province: str | None) -> BallotRejected:
    return BallotRejected(submission_id=submission_id, campaign_id=sub.campaign_id, province=province,
                          channel=sub.channel, reason=outcome.reason_code, detail=outcome.detail, field=outcome.field)


async def submit(conn: AsyncConnection, store: EventStore, sub: Submission, meta: Metadata,
                 metrics: Any = None) -> tuple[str, Outcome]:
    try:
        code: str | None = parse_code(sub.code)
    except InvalidCode:
        code = None
    row = (await conn.execute(_LOOKUP, {"code": code, "campaign_id": sub.campaign_id})).one()
    ballot = unit = None
    if row.ballot_id is not None:
        ballot = Ballot(row.ballot_id, row.ballot_campaign, row.unit_id, row.code, Status(row.status),
                        row.cancel_reason)
        unit = unit_of(row)
    # Campaign and unit are read once, for the rules and for the events alike.
    campaign = await campaign_facts(conn, sub.campaign_id, row._mapping if row.campaign_found is not None else None)
    active = frozenset({unit.unit_id}) if unit is not None and unit.status == "active" else frozenset()
    outcome = Decider(campaign, {ballot.code: ballot} if ballot else {}, active)(sub)
    submission_id = str(new_id())
    now = dt.datetime.now(dt.UTC)
    if isinstance(outcome, Accepted):
        assert unit is not None and unit.unit_id == outcome.ballot.unit_id  # accepted only with its active unit
        await conn.execute(_ACCEPT, {
            "ballot_id": outcome.ballot.ballot_id, "campaign_id": sub.campaign_id, "unit_id": unit.unit_id,
            "channel": sub.channel, "answers": json.dumps(dict(outcome.answers)),
            "expectations": json.dumps(sorted(outcome.expectations)), "entered_by": sub.entered_by,
            "entry_seconds": sub.entry_seconds, "now": now, "submission_id": submission_id})
        event = accepted_event(sub, outcome, unit, campaign.province)
        stream = f"ballot-{outcome.ballot.ballot_id}"
        try:  # an issued ballot's stream holds exactly its BallotIssued (it is locked, and used or cancelled ends it)
            await store.append(conn, stream, [event], expected_version=1, meta=meta)
        except ConcurrencyError:  # not so (nothing was written): append after whatever is there, as before
            await store.append(conn, stream, [event], expected_version=None, meta=meta)
        _count(metrics, sub, "accepted", "")
        return submission_id, outcome
    await conn.execute(_REJECT, {
        "submission_id": submission_id, "campaign_id": sub.campaign_id, "channel": sub.channel,
        "reason": outcome.reason_code, "detail": outcome.detail, "ballot_id": ballot.ballot_id if ballot else None,
        "now": now})
    await store.append(conn, f"submission-{submission_id}", [rejected_event(sub, outcome, submission_id,
                                                                           campaign.province)],
                       expected_version=0, meta=meta)
    _count(metrics, sub, "rejected", outcome.reason_code)
    return submission_id, outcome


def _count(metrics: Any, sub: Submission, outcome: str, reason: str, n: int = 1) -> None:
    # Counted before commit: a transaction that then fails over-counts, never under-counts.
    if metrics is not None:
        intake_outcomes(metrics).labels(sub.campaign_id, sub.channel, outcome, reason).inc(n)
