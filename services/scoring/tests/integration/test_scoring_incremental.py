"""Property: for any stream of accepted, repeated and voided ballots, the tallies scoring keeps in
PostgreSQL, updated event by event, equal a full recompute from the events, exactly."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
from pathlib import Path

import pytest
from conftest import service_database
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from sipas_events.catalogue import ballots as bal
from sipas_events.catalogue import registry as reg
from sipas_events.envelope import Envelope
from sipas_events.ids import new_id
from sipas_kit.reference import reference_projection
from sipas_scoring.adapters.tables import reference
from sipas_scoring.application.definitions import definitions, instrument_of
from sipas_scoring.application.recount import recount
from sipas_scoring.domain.scheme import Ballot
from sipas_scoring.domain.tallies import ballot_tallies, sum_tallies
from sipas_scoring.projections.tallies import projection as counted

REFERENCE = Path(__file__).resolve().parents[4] / "data" / "reference"
SIPAS = json.loads((REFERENCE / "instruments" / "sipas-2017.json").read_text(encoding="utf-8"))["definition"]
SCHEME = json.loads((REFERENCE / "schemes" / "share-satisfied.json").read_text(encoding="utf-8"))["definition"]
ITEMS = [i["code"] for f in SIPAS["factors"] for i in f["items"]][:8]  # a few items keep examples readable
INSTRUMENT = instrument_of(reg.InstrumentDefinition.model_validate(SIPAS))
AGENCIES = ["a1", "a2", "a3"]
_campaigns = itertools.count()

# An action: accept ballot k (answers, agency), or void ballot k; ballots reuse a small id space so
# repeats and voids of unknown or already-voided ballots happen often.
answers = st.dictionaries(st.sampled_from(ITEMS), st.one_of(st.none(), st.integers(1, 5)), max_size=len(ITEMS))
action = st.one_of(
    st.tuples(st.just("accept"), st.integers(0, 12), answers, st.sampled_from(AGENCIES),
              st.lists(st.sampled_from(["KN1", "KN2", "KN3"]), unique=True, max_size=2)),
    st.tuples(st.just("void"), st.integers(0, 12), st.just({}), st.just(""), st.just([])),
)


def envelope(producer: str, event, position: int) -> Envelope:
    return Envelope(id=new_id(), source=f"/sipas/{producer}", type=event.event_type(), subject="test",
                    time=dt.datetime(2026, 3, 1, tzinfo=dt.UTC), data=event.payload(), sequence=1, position=position,
                    correlationid="test", actor="test")


def recompute(actions) -> dict[tuple[str, str], int]:
    """The truth from the events: the first acceptance of a ballot counts unless a void follows it
    (a void before any acceptance makes the ballot never count)."""
    state: dict[int, tuple[str, Ballot] | None] = {}
    for kind, k, given_answers, agency, chosen in actions:
        if kind == "accept" and k not in state:
            state[k] = (agency, Ballot(str(k), given_answers, frozenset(chosen)))
        elif kind == "void":
            state[k] = None
    out: dict[tuple[str, str], int] = {}
    for agency in AGENCIES:
        bags = [ballot_tallies(INSTRUMENT, ballot) for kept in state.values() if kept for ag, ballot in [kept]
                if ag == agency]
        out |= {(agency, key): count for key, count in sum_tallies(bags).items()}
    return out


@pytest.fixture(scope="module")
def database(stack):
    url = service_database(stack, "scoring")

    async def setup() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                for i, event in enumerate([
                    reg.InstrumentPublished(instrument_id="sipas-2017", instrument_version=1, definition=SIPAS),
                    reg.SchemePublished(scheme_id="share-satisfied", scheme_version=1, definition=SCHEME),
                ], start=1):
                    await reference_projection(reference).handlers[type(event).__name__](conn, event,
                                                                                         envelope("registry", event, i))
        finally:
            await engine.dispose()

    asyncio.run(setup())
    return url


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(action, max_size=30))
def test_incremental_tallies_equal_a_recompute_from_the_events(database, actions):
    campaign_id = f"c{next(_campaigns)}"

    async def run() -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
        engine = create_async_engine(database)
        try:
            opened = reg.CampaignOpened(
                campaign_id=campaign_id, name="Vòng thử", year=2026, scope="national",
                collection_window={"start": "2026-01-01", "end": "2026-12-31"},
                frame_window={"start": "2025-01-01", "end": "2025-12-31"}, target_unit_ids=AGENCIES,
                instrument={"id": "sipas-2017", "version": 1}, scheme={"id": "share-satisfied", "version": 1},
                retention_until="2030-01-01")
            async with engine.begin() as conn:
                await reference_projection(reference).handlers["CampaignOpened"](conn, opened,
                                                                                 envelope("registry", opened, 3))
            for position, (kind, k, given_answers, agency, chosen) in enumerate(actions, start=1):
                ballot_id = f"{campaign_id}-b{k}"
                if kind == "accept":
                    event = bal.BallotAccepted(ballot_id=ballot_id, campaign_id=campaign_id, unit_id=f"u{k}",
                                               agency_id=agency, stratum=agency, weight_ref="d1", channel="online",
                                               answers=given_answers, expectations=chosen)
                else:
                    event = bal.BallotVoided(ballot_id=ballot_id, campaign_id=campaign_id, reason="test")
                async with engine.begin() as conn:  # one transaction per event, as the consumer applies it
                    await counted.handlers[type(event).__name__](conn, event, envelope("ballots", event, position))
            async with engine.connect() as conn:
                rows = await conn.execute(text("SELECT agency_id, key, count FROM sc_tallies WHERE campaign_id = :c"),
                                          {"c": campaign_id})
                incremental = {(a, key): int(c) for a, key, c in rows}
                return incremental, await recount(conn, await definitions.basis(conn, campaign_id))
        finally:
            await engine.dispose()

    incremental, recounted = asyncio.run(run())
    truth = recompute(actions)
    assert incremental == truth  # kept event by event
    assert recounted == truth    # the operators' SQL recount from the counted ballots agrees too
