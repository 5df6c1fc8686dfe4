"""Counted ballots and their tallies, from the ballots service's events.

``BallotAccepted`` adds the ballot's bag of counts (:func:`domain.tallies.ballot_tallies`) to its
agency's tallies; ``BallotVoided`` takes the same bag away. Each ballot is counted at most once: the
``sc_ballots`` row decides (an accepted ballot seen again, or voided twice, changes nothing), beside
the consumer's inbox that already drops a redelivered event. Online ratings are kept per dossier: a
dossier sent again in a later batch replaces its earlier rating, so it is never counted twice.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import delete, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.catalogue.ballots import BallotAccepted, BallotVoided, OnlineRatingsRecorded
from sipas_events.envelope import Envelope
from sipas_events.projection import Projection
from sipas_scoring.adapters.tables import ballots, dossiers, tallies
from sipas_scoring.application.definitions import definitions
from sipas_scoring.domain.scheme import Ballot
from sipas_scoring.domain.tallies import ballot_tallies
from sipas_scoring.projections.marks import mark_dirty

projection = Projection(name="tallies", producer="ballots", tables=[ballots, tallies, dossiers])
UNASSIGNED = "unassigned"

_ADD = text(
    "INSERT INTO sc_tallies (campaign_id, agency_id, key, count)"
    " SELECT :campaign_id, :agency_id, k, c FROM unnest(CAST(:keys AS text[]), CAST(:counts AS bigint[])) AS t(k, c)"
    " ON CONFLICT (campaign_id, agency_id, key) DO UPDATE SET count = sc_tallies.count + EXCLUDED.count"
)


async def _add(conn: AsyncConnection, campaign_id: str, agency_id: str, bag: Counter[str], sign: int) -> None:
    keys = sorted(bag)
    await conn.execute(_ADD, {"campaign_id": campaign_id, "agency_id": agency_id, "keys": keys,
                              "counts": [sign * bag[k] for k in keys]})
    if sign < 0:  # a count back at zero is no count: the state equals a recompute row for row
        await conn.execute(delete(tallies).where(tallies.c.campaign_id == campaign_id,
                                                 tallies.c.agency_id == agency_id, tallies.c.count == 0))


def _ballot(ballot_id: str, answers: dict[str, int | None], expectations: list[str]) -> Ballot:
    return Ballot(ballot_id, answers, frozenset(expectations))


@projection.on("BallotAccepted")
async def on_ballot_accepted(conn: AsyncConnection, e: BallotAccepted, env: Envelope) -> None:
    basis = await definitions.basis(conn, e.campaign_id)
    agency_id = e.agency_id or UNASSIGNED
    inserted = (await conn.execute(insert(ballots).values(
        ballot_id=e.ballot_id, campaign_id=e.campaign_id, unit_id=e.unit_id, agency_id=agency_id,
        province=e.province, stratum=e.stratum, draw_id=e.weight_ref, channel=e.channel, answers=e.answers,
        expectations=sorted(e.expectations), status="accepted", accepted_position=env.position, accepted_at=env.time,
    ).on_conflict_do_nothing().returning(ballots.c.ballot_id))).first()
    if inserted is None:
        return  # counted already, or voided before (a tombstone): never twice
    await _add(conn, e.campaign_id, agency_id, ballot_tallies(basis.instrument, _ballot(
        e.ballot_id, e.answers, e.expectations)), +1)
    await mark_dirty(conn, e.campaign_id, env, [agency_id])


@projection.on("BallotVoided")
async def on_ballot_voided(conn: AsyncConnection, e: BallotVoided, env: Envelope) -> None:
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
    latest = {r.dossier_id: r for r in e.ratings}  # a batch naming a dossier twice: its last rating stands
    rows = [{"campaign_id": e.campaign_id, "dossier_id": r.dossier_id, "agency_code": r.agency_code,
             "province": e.province, "completed_on": r.completed_on, "rated_unsatisfied": r.rated_unsatisfied,
             "complained": r.complained, "overdue": r.overdue, "source_position": env.position}
            for r in latest.values()]
    stmt = insert(dossiers).values(rows)
    await conn.execute(stmt.on_conflict_do_update(index_elements=["campaign_id", "dossier_id"], set_={
        c: stmt.excluded[c] for c in ("agency_code", "province", "completed_on", "rated_unsatisfied", "complained",
                                      "overdue", "source_position")}))
    await mark_dirty(conn, e.campaign_id, env, [])
