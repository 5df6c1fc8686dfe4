"""Bulk import of keyed ballots (CSV or XLSX): every row through the one validation path, a report row
for every row. Each ballot stands on its own, so a bad row never blocks a good one; every rejection
is recorded like any other channel's.

Set-based, one transaction per file: the campaign, instrument and scheme are read once; every code
of the file is locked with one ``SELECT … FOR UPDATE`` (in code order, so two imports sharing codes
wait for each other instead of deadlocking; an online submission of one of them waits for the
import's commit and then finds it used); the rows are decided in file order with ``intake.decide``
(a code twice in the file: the second is ``used_code``); then the ballots' status, the accepted
ballots, the submission records and their events are written in chunks of ``CHUNK`` rows, a few
statements each. Either the whole file's outcomes are recorded or, if anything fails, none is.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sipas_ballots.application.intake import (
    Decider,
    Unit,
    _count,
    accepted_event,
    load_campaign,
    rejected_event,
    today_in_vietnam,
)
from sipas_ballots.domain.codes import parse_code
from sipas_ballots.domain.errors import BallotsError, InvalidCode
from sipas_ballots.domain.issuance import Ballot, Status
from sipas_ballots.domain.validation import Accepted, Outcome, Rejected, Submission
from sipas_events.catalogue.base import Event
from sipas_events.ids import new_id
from sipas_events.store import EventStore, Metadata, StreamAppend

RESERVED = {"code", "expectations", "not_applicable_factors", "entered_by"}
CHUNK = 2000
Decided = tuple[int, Submission, str, Outcome, str | None]
"""A decided row: its line, the submission, its submission id, the outcome and the ballot its code names."""


class UnreadableImport(BallotsError):
    pass


def rows_of(content: bytes, filename: str) -> Iterator[tuple[int, dict[str, Any]]]:
    if content.startswith(b"PK\x03\x04") or filename.lower().endswith(".xlsx"):
        import openpyxl

        try:
            book = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        except Exception as exc:
            raise UnreadableImport(f"not a readable XLSX workbook: {type(exc).__name__}", "file") from None
        sheet = book.worksheets[0].iter_rows(values_only=True)
        header = [str(h or "").strip() for h in next(sheet, ())]
        _check(header)
        for line, values in enumerate(sheet, start=2):
            yield line, dict(zip(header, values, strict=False))
        book.close()
        return
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableImport(f"not UTF-8 text at byte {exc.start}", "file") from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader, [])]
        _check(header)
        for line, values in enumerate(reader, start=2):
            if any(v.strip() for v in values):
                yield line, dict(zip(header, values, strict=False))
    except csv.Error as exc:
        raise UnreadableImport(f"not readable CSV at line {reader.line_num}: {exc}", "file") from None


def _check(header: list[str]) -> None:
    if "code" not in header:
        raise UnreadableImport("the first row must name the columns: code, then one column per item code "
                               "(e.g. 1.1), optionally expectations and not_applicable_factors", "file")


_TEXT_ANSWERS: dict[str, int | None] = {"": None, "0": None} | {str(i): i for i in range(1, 10)}


def _answer(value: Any) -> Any:
    if isinstance(value, str) and value in _TEXT_ANSWERS:  # the common case, as typed in a CSV
        return _TEXT_ANSWERS[value]
    if value is None or (isinstance(value, str) and value.strip() in ("", "0")):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return value  # anything else is off scale, and the validation path says so


_LOCK = text("""
    SELECT b.ballot_id, b.campaign_id, b.unit_id, b.code, b.status, b.cancel_reason,
           u.unit_id AS unit_found, u.status AS unit_status, u.agency_id, u.stratum, u.draw_id
    FROM ballots b LEFT JOIN sampled_units u ON u.unit_id = b.unit_id
    WHERE b.code = ANY(CAST(:codes AS text[]))
    ORDER BY b.code
    FOR UPDATE OF b
""")
_WRITE = text("""
    WITH used AS (
        UPDATE ballots SET status = 'used' FROM unnest(CAST(:a_ballots AS text[])) AS a(ballot_id)
        WHERE ballots.ballot_id = a.ballot_id
    ), kept AS (
        INSERT INTO accepted_ballots (ballot_id, campaign_id, unit_id, channel, answers, expectations, entered_by,
                                      entry_seconds, accepted_at)
        SELECT a.ballot_id, CAST(:campaign_id AS text), a.unit_id, 'import', CAST(a.answers AS jsonb),
               CAST(a.expectations AS jsonb), a.entered_by, NULL, CAST(:now AS timestamptz)
        FROM unnest(CAST(:a_ballots AS text[]), CAST(:a_units AS text[]), CAST(:a_answers AS text[]),
                    CAST(:a_expectations AS text[]), CAST(:a_entered_by AS text[]))
             AS a(ballot_id, unit_id, answers, expectations, entered_by)
    )
    INSERT INTO submissions (submission_id, campaign_id, channel, outcome, reason, detail, ballot_id, received_at)
    SELECT s.submission_id, CAST(:campaign_id AS text), 'import', s.outcome, s.reason, s.detail, s.ballot_id,
           CAST(:now AS timestamptz)
    FROM unnest(CAST(:s_ids AS text[]), CAST(:s_outcomes AS text[]), CAST(:s_reasons AS text[]),
                CAST(:s_details AS text[]), CAST(:s_ballots AS text[])) AS s(submission_id, outcome, reason, detail,
                                                                                 ballot_id)
""")


def _submissions(content: bytes, filename: str, campaign_id: str, clerk: str,
                 today: dt.date) -> list[tuple[int, Submission]]:
    out = []
    for line, row in rows_of(content, filename):
        answers = {k: _answer(v) for k, v in row.items() if k not in RESERVED and k}
        out.append((line, Submission(
            code=str(row.get("code") or ""), campaign_id=campaign_id, received_on=today, answers=answers,
            channel="import", expectations=frozenset(str(row.get("expectations") or "").split()),
            entered_by=str(row.get("entered_by") or clerk),
            not_applicable_factors=frozenset(str(row.get("not_applicable_factors") or "").split()))))
    return out


def _code(text_: str) -> str | None:
    try:
        return parse_code(text_)
    except InvalidCode:
        return None


async def import_ballots(engine: AsyncEngine | AsyncConnection, store: EventStore, campaign_id: str, content: bytes,
                         filename: str, clerk: str, meta: Metadata, metrics: Any = None) -> list[dict[str, Any]]:
    """Decide and record every row of the file in one transaction: the engine's own, or the caller's
    connection's (the API's, which records the ``Idempotency-Key`` answer in the same transaction)."""
    subs = _submissions(content, filename, campaign_id, clerk, today_in_vietnam())
    if not subs:
        raise UnreadableImport("the file has a header but no rows", "file")
    if isinstance(engine, AsyncConnection):
        return await _import(engine, store, campaign_id, subs, meta, metrics)
    async with engine.begin() as conn:
        return await _import(conn, store, campaign_id, subs, meta, metrics)


async def _import(conn: AsyncConnection, store: EventStore, campaign_id: str, subs: list[tuple[int, Submission]],
                  meta: Metadata, metrics: Any) -> list[dict[str, Any]]:
    campaign = await load_campaign(conn, campaign_id)
    codes = sorted({c for _, sub in subs if isinstance(sub.code, str) and (c := _code(sub.code)) is not None})
    found: dict[str, Ballot] = {}
    units: dict[str, Unit] = {}
    for row in await conn.execute(_LOCK, {"codes": codes}):
        found[row.code] = Ballot(row.ballot_id, row.campaign_id, row.unit_id, row.code, Status(row.status),
                                 row.cancel_reason)
        if row.unit_found is not None:
            units[row.unit_id] = Unit(row.unit_found, row.unit_status, row.agency_id, row.stratum, row.draw_id)
    decide = Decider(campaign, found, frozenset(u.unit_id for u in units.values() if u.status == "active"))
    decided: list[Decided] = []
    for line, sub in subs:
        code = _code(sub.code) if isinstance(sub.code, str) else None
        named = found.get(code) if code is not None else None  # the ballot the code names, recorded either way
        outcome = decide(sub)
        if isinstance(outcome, Accepted):  # a later row with the same code finds it used
            found[outcome.ballot.code] = Ballot(outcome.ballot.ballot_id, outcome.ballot.campaign_id,
                                                outcome.ballot.unit_id, outcome.ballot.code, Status.USED)
        decided.append((line, sub, str(new_id()), outcome, named.ballot_id if named else None))
    now = dt.datetime.now(dt.UTC)
    report: list[dict[str, Any]] = []
    for start in range(0, len(decided), CHUNK):
        report += await _write(conn, store, campaign_id, campaign.province, units, decided[start:start + CHUNK], now,
                               meta)
    for (_, sub, _, outcome, _) in decided:
        reason = outcome.reason_code if isinstance(outcome, Rejected) else ""
        _count(metrics, sub, "rejected" if reason else "accepted", reason)
    return report


async def _write(conn: AsyncConnection, store: EventStore, campaign_id: str, province: str | None,
                 units: dict[str, Unit], chunk: list[Decided], now: dt.datetime,
                 meta: Metadata) -> list[dict[str, Any]]:
    a_ballots: list[str] = []
    a_units: list[str] = []
    a_answers: list[str] = []
    a_expectations: list[str] = []
    a_entered_by: list[str | None] = []
    s_ids: list[str] = []
    s_outcomes: list[str] = []
    s_reasons: list[str | None] = []
    s_details: list[str | None] = []
    s_ballots: list[str | None] = []
    appends: list[StreamAppend] = []
    report: list[dict[str, Any]] = []
    for line, sub, submission_id, outcome, ballot_id in chunk:
        s_ids.append(submission_id)
        if isinstance(outcome, Accepted):
            ballot = outcome.ballot
            unit = units[ballot.unit_id]
            a_ballots.append(ballot.ballot_id)
            a_units.append(ballot.unit_id)
            a_answers.append(json.dumps(dict(outcome.answers)))
            a_expectations.append(json.dumps(sorted(outcome.expectations)))
            a_entered_by.append(sub.entered_by)
            s_outcomes.append("accepted")
            s_reasons.append(None)
            s_details.append(None)
            s_ballots.append(ballot.ballot_id)
            event: Event = accepted_event(sub, outcome, unit, province)
            appends.append(StreamAppend(f"ballot-{ballot.ballot_id}", [event], None))
            report.append({"line": line, "outcome": "accepted", "reason": "", "detail": "",
                           "submission_id": submission_id})
        else:
            s_outcomes.append("rejected")
            s_reasons.append(outcome.reason_code)
            s_details.append(outcome.detail)
            s_ballots.append(ballot_id)
            appends.append(StreamAppend(f"submission-{submission_id}",
                                        [rejected_event(sub, outcome, submission_id, province)], 0))
            report.append({"line": line, "outcome": "rejected", "reason": outcome.reason_code,
                           "detail": outcome.detail, "submission_id": submission_id})
    await conn.execute(_WRITE, {
        "campaign_id": campaign_id, "now": now, "a_ballots": a_ballots, "a_units": a_units, "a_answers": a_answers,
        "a_expectations": a_expectations, "a_entered_by": a_entered_by, "s_ids": s_ids, "s_outcomes": s_outcomes,
        "s_reasons": s_reasons, "s_details": s_details, "s_ballots": s_ballots})
    await store.append_many(conn, appends, meta=meta, chunk=CHUNK)
    return report
