"""Counted ballots and their tallies, from the ballots service's events.

``BallotAccepted`` adds the ballot's bag of counts (:func:`domain.tallies.ballot_tallies`) to its
agency's tallies; ``BallotVoided`` takes the same bag away. Each ballot is counted at most once: the
``sc_ballots`` row decides (an accepted ballot seen again, or voided twice, changes nothing), beside
the consumer's inbox that already drops a redelivered event. Online ratings are kept per dossier: a
dossier sent again in a later batch replaces its earlier rating, so it is never counted twice.

The consumer applies a run of events (up to its batch) through :func:`apply_run`, set-based: the run's
ballots are followed in memory from their stored rows, event by event in position order, then written
— new rows and rows voided one statement each, the tallies summed per agency and each touched
agency's row read and written back once (:mod:`sipas_scoring.adapters.tally_rows`), one dirty mark per
campaign. The state it leaves is the one the per-event handlers below leave (the
property test in ``tests/integration`` checks both against a recompute); they stay the reference, and
the consumer falls back to them when a run cannot be applied at once (a campaign not known yet, an
answer off the scale), so such an event is retried or dead-lettered on its own.

While the projection is rebuilt from the stream, runs go through :func:`rebuild_run`, which writes the
ballots but no tallies: it marks their campaigns owed (``sc_recounts_owed``, in the run's transaction)
and the rebuild ends with :func:`settle`, one recount a campaign from the answer codes. Whatever touches
an owed campaign's tallies settles it first (the handlers, :func:`apply_run`, and the service at start),
so a rebuild interrupted half-way leaves tallies that are owed, never wrong.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import asyncpg
import numpy as np
from pydantic_core import to_json
from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.catalogue.ballots import BallotAccepted, BallotVoided, OnlineRatingsRecorded
from sipas_events.consumer import NotReady
from sipas_events.copy import copy_records
from sipas_events.envelope import Envelope, Stamp
from sipas_events.projection import Projection
from sipas_scoring.adapters import tally_rows
from sipas_scoring.adapters.tables import ballots, dossiers, recounts_owed, reference, tallies, tally_keys
from sipas_scoring.application.definitions import CampaignBasis, definitions
from sipas_scoring.application.recount import recount, replace
from sipas_scoring.domain.codes import Codebook
from sipas_scoring.domain.scheme import Ballot
from sipas_scoring.domain.tallies import ballot_tallies
from sipas_scoring.projections.marks import mark_dirty, mark_dirty_since
from sipas_scoring.projections.records import AcceptedRecord, prepare

projection = Projection(name="tallies", producer="ballots",
                        tables=[ballots, tallies, tally_keys, dossiers, recounts_owed])
_BALLOT_EVENTS: frozenset[type] = frozenset({BallotAccepted, BallotVoided})
"""Events of one ballot. Checked by exact type, as the catalogue decodes them (``isinstance`` on a pydantic
model goes through ``ABCMeta``: a run's checks were a few percent of a rebuild)."""
UNASSIGNED = "unassigned"

async def _add(conn: AsyncConnection, campaign_id: str, agency_id: str, bag: Counter[str], sign: int) -> None:
    await tally_rows.add(conn, {(campaign_id, agency_id): {k: sign * n for k, n in bag.items()}})


def _ballot(ballot_id: str, answers: dict[str, int | None], expectations: list[str]) -> Ballot:
    return Ballot(ballot_id, answers, frozenset(expectations))


# ---- tallies owed by a rebuild --------------------------------------------------------------------
_SETTLE = text("DELETE FROM sc_recounts_owed WHERE campaign_id = ANY(CAST(:ids AS text[])) RETURNING campaign_id")
_SETTLE_ALL = text("DELETE FROM sc_recounts_owed RETURNING campaign_id")
_OWE = text("INSERT INTO sc_recounts_owed (campaign_id, since) SELECT unnest(CAST(:ids AS text[])), now()"
            " ON CONFLICT DO NOTHING")


async def settle(conn: AsyncConnection, campaign_ids: Sequence[str] | None = None) -> list[str]:
    """Recount the campaigns (of ``campaign_ids``, or all) whose tallies a rebuild left owed, and store them.

    The mark is deleted first, so a concurrent settler of the same campaign waits on its row and then
    finds nothing to do; the recount then reads the ballots as committed, which are all the ballots the
    tallies must count (the consumer applies one run at a time and settles before it adds)."""
    if campaign_ids is not None and not campaign_ids:
        return []
    owed = sorted((await conn.execute(_SETTLE_ALL if campaign_ids is None else _SETTLE,
                                      {} if campaign_ids is None else {"ids": sorted(set(campaign_ids))})).scalars())
    for campaign_id in owed:
        await replace(conn, campaign_id, await recount(conn, await definitions.basis(conn, campaign_id)))
        await mark_dirty_since(conn, campaign_id, dt.datetime.now(dt.UTC), [])
    return owed


@projection.after_rebuild
async def settle_all(conn: AsyncConnection) -> None:
    await settle(conn)


# ---- one event at a time ----------------------------------------------------------------------------
@projection.on("BallotAccepted")
async def on_ballot_accepted(conn: AsyncConnection, e: BallotAccepted, env: Envelope) -> None:
    await settle(conn, [e.campaign_id])
    basis = await definitions.basis(conn, e.campaign_id)
    agency_id = e.agency_id or UNASSIGNED
    inserted = (await conn.execute(insert(ballots).values(
        ballot_id=e.ballot_id, campaign_id=e.campaign_id, unit_id=e.unit_id, agency_id=agency_id,
        province=e.province, stratum=e.stratum, draw_id=e.weight_ref, channel=e.channel, answers=e.answers,
        expectations=sorted(e.expectations), status="accepted", accepted_position=env.position, accepted_at=env.time,
        answer_codes=Codebook.of(basis.instrument).encode(e.answers, e.expectations),
    ).on_conflict_do_nothing().returning(ballots.c.ballot_id))).first()
    if inserted is None:
        return  # counted already, or voided before (a tombstone): never twice
    await _add(conn, e.campaign_id, agency_id, ballot_tallies(basis.instrument, _ballot(
        e.ballot_id, e.answers, e.expectations)), +1)
    await mark_dirty(conn, e.campaign_id, env, [agency_id])


@projection.on("BallotVoided")
async def on_ballot_voided(conn: AsyncConnection, e: BallotVoided, env: Envelope) -> None:
    await settle(conn, [e.campaign_id])
    row = (await conn.execute(update(ballots).where(ballots.c.ballot_id == e.ballot_id, ballots.c.status == "accepted")
                              .values(status="voided", voided_position=env.position)
                              .returning(ballots.c.agency_id, ballots.c.answers, ballots.c.expectations))).first()
    if row is None:
        known = (await conn.execute(select(ballots.c.status).where(ballots.c.ballot_id == e.ballot_id))).scalar()
        if known is None:  # voided before scoring saw it accepted: remember, so it is never counted
            await conn.execute(insert(ballots).values(
                ballot_id=e.ballot_id, campaign_id=e.campaign_id, agency_id=UNASSIGNED, province=e.province,
                status="voided", voided_position=env.position).on_conflict_do_nothing())
        return
    basis = await definitions.basis(conn, e.campaign_id)
    await _add(conn, e.campaign_id, row.agency_id, ballot_tallies(basis.instrument, _ballot(
        e.ballot_id, row.answers, row.expectations or [])), -1)
    await mark_dirty(conn, e.campaign_id, env, [row.agency_id])


@projection.on("OnlineRatingsRecorded")
async def on_online_ratings(conn: AsyncConnection, e: OnlineRatingsRecorded, env: Envelope) -> None:
    await _record_ratings(conn, e, env)
    await mark_dirty(conn, e.campaign_id, env, [])


async def _record_ratings(conn: AsyncConnection, e: OnlineRatingsRecorded, env: Envelope | Stamp) -> None:
    latest = {r.dossier_id: r for r in e.ratings}  # a batch naming a dossier twice: its last rating stands
    rows = [{"campaign_id": e.campaign_id, "dossier_id": r.dossier_id, "agency_code": r.agency_code,
             "province": e.province, "completed_on": r.completed_on, "rated_unsatisfied": r.rated_unsatisfied,
             "complained": r.complained, "overdue": r.overdue, "source_position": env.position}
            for r in latest.values()]
    stmt = insert(dossiers).values(rows)
    await conn.execute(stmt.on_conflict_do_update(index_elements=["campaign_id", "dossier_id"], set_={
        c: stmt.excluded[c] for c in ("agency_code", "province", "completed_on", "rated_unsatisfied", "complained",
                                      "overdue", "source_position")}))


# ---- a run at a time ------------------------------------------------------------------------------
_KNOWN = text(  # a join, not ``= ANY``: on a table just truncated (a rebuild) the planner would scan it per id
    "SELECT b.ballot_id, b.status, b.agency_id, b.answers, b.expectations"
    " FROM unnest(CAST(:ids AS text[])) AS i(id) JOIN sc_ballots AS b ON b.ballot_id = i.id")
_INSERTED = ("ballot_id", "campaign_id", "unit_id", "agency_id", "province", "stratum", "draw_id", "channel",
             "answers", "expectations", "status", "accepted_position", "voided_position", "accepted_at",
             "answer_codes")
_VOID_BALLOTS = text(
    "UPDATE sc_ballots SET status = 'voided', voided_position = v.p"
    " FROM unnest(CAST(:ballot_ids AS text[]), CAST(:positions AS bigint[])) AS v(b, p)"
    " WHERE sc_ballots.ballot_id = v.b AND sc_ballots.status = 'accepted'"
)
_HEAD, _TAIL = itemgetter(*_INSERTED[:8]), itemgetter(*_INSERTED[10:])  # the columns around the two JSONB ones


async def _copy_ballots(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """COPY new ballot rows (binary, in the run's transaction; an INSERT binding fifteen arrays spent a third of
    a rebuild's time binding them). A row stored meanwhile by another writer fails the COPY, and the run: it is
    then applied event by event (:class:`RunConflict`)."""
    assert _INSERTED[8:10] == ("answers", "expectations")
    records = [(*_HEAD(r), *(r.get("texts") or (_json(r["answers"]), _json(r["expectations"]))), *_TAIL(r))
               for r in rows]
    try:
        await copy_records(conn, ballots.name, _INSERTED, records)
    except asyncpg.UniqueViolationError as exc:
        raise RunConflict(f"a ballot of the run was stored meanwhile: {exc}") from exc


def _json(value: Any) -> str | None:
    return None if value is None else to_json(value).decode()


class RunConflict(Exception):
    """The stored ballots changed under a run (another writer): apply it event by event instead."""


@projection.on_run
async def apply_run(conn: AsyncConnection, events: Sequence[tuple[Any, Envelope]]) -> None:
    """Apply a run of events set-based, leaving the state the handlers above leave one by one."""
    await settle(conn, sorted({e.campaign_id for e, _ in events if type(e) in _BALLOT_EVENTS}))
    await _apply(conn, events, owe=False)


@projection.on_rebuild_run
async def rebuild_run(conn: AsyncConnection, events: Sequence[tuple[Any, Envelope | Stamp]]) -> None:
    """A run while the projection is rebuilt: the ballots as :func:`apply_run` writes them, but no tallies —
    their campaigns are marked owed instead, and :func:`settle` recounts each once at the end (the recount
    counts a million ballots in a few seconds; adding ~30 tally rows a ballot run by run was most of a
    rebuild's time)."""
    await _apply(conn, events, owe=True)


_RUN_BALLOTS = _BALLOT_EVENTS | {AcceptedRecord}
"""What a run may hold of one ballot: its events, and accepted ballots as a rebuild's reader prepared them."""


@projection.context_for_rebuild
async def codebooks(conn: AsyncConnection) -> dict[str, Codebook]:
    """The codebook of every campaign known when a rebuild starts, for :func:`prepare` to encode with."""
    out = {}
    for campaign_id in (await conn.execute(select(reference.campaigns.c.campaign_id))).scalars():
        with contextlib.suppress(NotReady):
            out[campaign_id] = Codebook.of((await definitions.basis(conn, campaign_id)).instrument)
    return out


projection.prepare_for_rebuild(prepare)


async def _apply(conn: AsyncConnection, events: Sequence[tuple[Any, Envelope | Stamp]], owe: bool) -> None:
    ids = sorted({e.ballot_id for e, _ in events if type(e) in _RUN_BALLOTS})
    state: dict[str, dict[str, Any]] = {}  # each ballot of the run as stored, then as the run leaves it
    if ids:
        for r in await conn.execute(_KNOWN, {"ids": ids}):
            state[r.ballot_id] = {"status": r.status, "agency_id": r.agency_id, "answers": r.answers,
                                  "expectations": r.expectations}
    new: dict[str, dict[str, Any]] = {}  # rows to insert, in their final state
    voided: dict[str, int | None] = {}  # stored accepted rows the run voids, with the void's position
    deltas: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    marks: dict[str, tuple[dt.datetime, set[str]]] = {}
    coded: dict[str, tuple[Codebook, list[tuple[str, bytes]]]] = {}  # per campaign, new ballots' agency and codes

    def mark(campaign_id: str, env: Envelope | Stamp, agency_ids: Sequence[str]) -> None:
        found = marks.get(campaign_id)
        if found is None:
            marks[campaign_id] = (env.time, set(agency_ids))
        else:  # the agencies' set grows in place: a run reaches up to every agency of a national campaign
            found[1].update(agency_ids)
            if env.time < found[0]:
                marks[campaign_id] = (env.time, found[1])

    bases: dict[str, tuple[CampaignBasis, Codebook]] = {}  # the codebook too: looking it up hashes the instrument

    async def basis_of(campaign_id: str) -> tuple[CampaignBasis, Codebook]:
        found = bases.get(campaign_id)
        if found is None:
            basis = await definitions.basis(conn, campaign_id)
            found = bases[campaign_id] = (basis, Codebook.of(basis.instrument))
        return found

    for e, env in events:
        kind = type(e)
        if kind is BallotAccepted or kind is AcceptedRecord:
            basis, codebook = await basis_of(e.campaign_id)
            if e.ballot_id in state:
                continue  # counted already, or voided before (a tombstone): never twice
            agency_id = e.agency_id or UNASSIGNED
            texts: tuple[str, str] | None = None
            if kind is AcceptedRecord:
                texts = e.texts
                answers, expectations = e.answers() if e.book != codebook.digest or not owe else (None, None)
                codes = e.codes if e.book == codebook.digest else codebook.encode(answers, expectations)
            else:
                answers, expectations = e.answers, sorted(e.expectations)
                codes = codebook.encode(answers, expectations)
            if codes is None:  # counting a ballot also checks its answers are on the scale
                assert answers is not None and expectations is not None  # (a record's are read when it has no codes)
                deltas[(e.campaign_id, agency_id)].update(ballot_tallies(basis.instrument, _ballot(
                    e.ballot_id, answers, expectations)))
            elif not owe:  # codes only for answers on the scale: counted below, the run's at once
                coded.setdefault(e.campaign_id, (codebook, []))[1].append((agency_id, codes))
            row: dict[str, Any] = {"ballot_id": e.ballot_id, "campaign_id": e.campaign_id, "unit_id": e.unit_id,
                                   "agency_id": agency_id, "province": e.province, "stratum": e.stratum,
                                   "draw_id": e.weight_ref, "channel": e.channel, "answers": answers,
                                   "expectations": expectations,
                                   "status": "accepted",
                                   "accepted_position": env.position, "voided_position": None,
                                   "accepted_at": env.time,
                                   "answer_codes": codes}
            if texts is not None:
                row["texts"] = texts
            state[e.ballot_id] = new[e.ballot_id] = row
            mark(e.campaign_id, env, [agency_id])
        elif kind is BallotVoided:
            known = state.get(e.ballot_id)
            if known is None:  # voided before scoring saw it accepted: remember, so it is never counted
                state[e.ballot_id] = new[e.ballot_id] = {
                    "ballot_id": e.ballot_id, "campaign_id": e.campaign_id, "unit_id": None, "agency_id": UNASSIGNED,
                    "province": e.province, "stratum": None, "draw_id": None, "channel": None, "answers": None,
                    "expectations": None, "status": "voided", "accepted_position": None,
                    "voided_position": env.position, "accepted_at": None, "answer_codes": None}
                continue
            if known["status"] != "accepted":
                continue
            known["status"] = "voided"
            if e.ballot_id in new:
                known["voided_position"] = env.position
            else:
                voided[e.ballot_id] = env.position
            if not owe:
                basis, _ = await basis_of(e.campaign_id)
                bag = ballot_tallies(basis.instrument, _ballot(e.ballot_id, known["answers"],
                                                               known["expectations"] or []))
                deltas[(e.campaign_id, known["agency_id"])].subtract(bag)
            mark(e.campaign_id, env, [known["agency_id"]])
        elif kind is OnlineRatingsRecorded:  # dossiers do not meet ballots: written in order as they come
            await _record_ratings(conn, e, env)
            mark(e.campaign_id, env, [])
        else:
            raise TypeError(f"tallies cannot apply {type(e).__name__} in a run")

    for campaign_id, (codebook, found) in coded.items():
        _count_codes(codebook, campaign_id, found, deltas)
    if owe:
        deltas.clear()  # counted by the recount that settles the campaign, as every other ballot
        owed = sorted({e.campaign_id for e, _ in events if type(e) in _RUN_BALLOTS})
        if owed:
            await conn.execute(_OWE, {"ids": owed})
    await _write_run(conn, new, voided, deltas)
    for campaign_id, (since, agency_ids) in sorted(marks.items()):
        await mark_dirty_since(conn, campaign_id, since, agency_ids)


def _count_codes(codebook: Codebook, campaign_id: str, found: list[tuple[str, bytes]],
                 deltas: dict[tuple[str, str], Counter[str]]) -> None:
    """Add to ``deltas`` the tallies of a campaign's new ballots, given as (agency, answer codes): every agency's
    counted at once (:meth:`Codebook.tallies_of`, what :func:`ballot_tallies` sums to, one ballot at a time)."""
    if not found:
        return
    agencies = sorted({agency_id for agency_id, _ in found})
    index = {agency_id: k for k, agency_id in enumerate(agencies)}
    rows = np.frombuffer(b"".join(codes for _, codes in found), dtype=np.uint8).reshape(len(found), codebook.width)
    owners = np.fromiter((index[agency_id] for agency_id, _ in found), dtype=np.int64, count=len(found))
    for agency_id, bag in zip(agencies, codebook.tallies_of(rows, owners, len(agencies)), strict=True):
        deltas[(campaign_id, agency_id)].update(bag)


async def _write_run(conn: AsyncConnection, new: dict[str, dict[str, Any]], voided: dict[str, int | None],
                     deltas: dict[tuple[str, str], Counter[str]]) -> None:
    if new:
        await _copy_ballots(conn, list(new.values()))
    if voided:
        result = await conn.execute(_VOID_BALLOTS, {"ballot_ids": list(voided), "positions": list(voided.values())})
        if result.rowcount != len(voided):
            raise RunConflict(f"{len(voided) - result.rowcount} of the ballots the run voids changed meanwhile")
    await tally_rows.add(conn, deltas)
