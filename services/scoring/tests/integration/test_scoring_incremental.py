"""Property: for any stream of accepted, repeated and voided ballots, the tallies scoring keeps in
PostgreSQL equal a full recompute from the events, exactly — updated event by event through the
handlers, and a run at a time through the set-based run handler the consumer uses (runs of any
length, so an accept and a void of one ballot, or its repeats, often share a run); both leave the
same counted-ballot rows too."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import pickle

import pytest
from conftest import service_database
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from sipas_cli.registry_client import builtin_definition
from sipas_events.catalogue import ballots as bal
from sipas_events.catalogue import registry as reg
from sipas_events.envelope import Envelope, Stamp
from sipas_events.ids import new_id
from sipas_kit.reference import reference_projection
from sipas_scoring.adapters.tables import TALLIES_EXPORT, reference
from sipas_scoring.application.definitions import definitions, instrument_of
from sipas_scoring.application.recount import recount
from sipas_scoring.domain.scheme import Ballot
from sipas_scoring.domain.tallies import ballot_tallies, sum_tallies
from sipas_scoring.projections.tallies import projection as counted
from sipas_scoring.projections.tallies import settle

SIPAS = builtin_definition("instrument", "sipas-2017")
SCHEME = builtin_definition("scheme", "share-satisfied")
ITEMS = [i["code"] for f in SIPAS["factors"] for i in f["items"]][:8]  # a few items keep examples readable
INSTRUMENT = instrument_of(reg.InstrumentDefinition.model_validate(SIPAS))
AGENCIES = ["a1", "a2", "a3"]
_campaigns = itertools.count()

# An action: accept ballot k (answers, agency), or void ballot k; ballots reuse a small id space so
# repeats and voids of unknown or already-voided ballots happen often.
answers = st.dictionaries(st.sampled_from(ITEMS), st.one_of(st.none(), st.integers(1, 5)), max_size=len(ITEMS))
action = st.one_of(
    st.tuples(st.just("accept"), st.integers(0, 12), answers, st.sampled_from(AGENCIES),
              # E1, E2 are the instrument's options; KN1 is not, so such a ballot gets no answer codes
              st.lists(st.sampled_from(["E1", "E2", "KN1"]), unique=True, max_size=2)),
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


def events_of(campaign_id: str, actions) -> list[tuple[object, Envelope]]:
    out = []
    for position, (kind, k, given_answers, agency, chosen) in enumerate(actions, start=1):
        ballot_id = f"{campaign_id}-b{k}"
        if kind == "accept":
            event = bal.BallotAccepted(ballot_id=ballot_id, campaign_id=campaign_id, unit_id=f"u{k}",
                                       agency_id=agency, stratum=agency, weight_ref="d1", channel="online",
                                       answers=given_answers, expectations=chosen)
        else:
            event = bal.BallotVoided(ballot_id=ballot_id, campaign_id=campaign_id, reason="test")
        out.append((event, envelope("ballots", event, position)))
    return out


async def open_campaign(engine, campaign_id: str) -> None:
    opened = reg.CampaignOpened(
        campaign_id=campaign_id, name="Vòng thử", year=2026, scope="national",
        collection_window={"start": "2026-01-01", "end": "2026-12-31"},
        frame_window={"start": "2025-01-01", "end": "2025-12-31"}, target_unit_ids=AGENCIES,
        instrument={"id": "sipas-2017", "version": 1}, scheme={"id": "share-satisfied", "version": 1},
        retention_until="2030-01-01")
    async with engine.begin() as conn:
        await reference_projection(reference).handlers["CampaignOpened"](conn, opened, envelope("registry", opened, 3))


async def state_of(conn, campaign_id: str) -> tuple[dict[tuple[str, str], int], list[tuple]]:
    rows = await conn.execute(text(f"SELECT agency_id, key, count FROM ({TALLIES_EXPORT}) AS t WHERE campaign_id = :c"),
                              {"c": campaign_id})
    kept = {(a, key): int(c) for a, key, c in rows}
    counted_rows = [(r[0].removeprefix(campaign_id), *r[1:]) for r in await conn.execute(text(
        "SELECT ballot_id, unit_id, agency_id, province, stratum, draw_id, channel, answers, expectations, status,"
        " accepted_position, voided_position, accepted_at, answer_codes FROM sc_ballots WHERE campaign_id = :c"
        " ORDER BY ballot_id"),
        {"c": campaign_id})]
    return kept, counted_rows


def on_a_new_campaign(database: str, actions, body):
    """``await body(engine, campaign_id, events)``: the actions as events of a campaign opened for them."""
    campaign_id = f"c{next(_campaigns)}"

    async def run():
        engine = create_async_engine(database)
        try:
            await open_campaign(engine, campaign_id)
            return await body(engine, campaign_id, events_of(campaign_id, actions))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def runs_of(events: list, cuts: list[int]) -> list[list]:
    """The events split into contiguous runs at ``cuts`` (as the consumer applies them, in order)."""
    bounds = sorted({c % (len(events) + 1) for c in cuts} | {0, len(events)})
    return [events[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def applied_both_ways(database: str, actions, cuts: list[int]):
    """The actions applied to one campaign event by event through the handlers (a transaction each), and
    to another by runs through the run handler (a transaction a run, as the consumer applies them):
    each campaign's (tallies, counted-ballot rows) and its recount; the second recount after every other
    ballot lost its answer codes (counted before migration 0005), so both recount paths add up."""
    one_by_one, by_runs, rebuilt = f"c{next(_campaigns)}", f"c{next(_campaigns)}", f"c{next(_campaigns)}"

    async def run():
        engine = create_async_engine(database)
        try:
            for campaign_id in (one_by_one, by_runs, rebuilt):
                await open_campaign(engine, campaign_id)
            for event, env in events_of(one_by_one, actions):
                async with engine.begin() as conn:
                    await counted.handlers[type(event).__name__](conn, event, env)
            assert counted.run_handler is not None
            for run_events in runs_of(events_of(by_runs, actions), cuts):
                async with engine.begin() as conn:
                    await counted.run_handler(conn, run_events)
            assert counted.rebuild_handler is not None  # as a rebuild applies runs: tallies owed, then settled
            assert counted.rebuild_prepare is not None  # and its reader prepares the events ahead of each run,
            assert counted.rebuild_context is not None  # with the codebooks known when the rebuild starts
            async with engine.connect() as conn:
                books = await counted.rebuild_context(conn)
            assert rebuilt in books
            for k, run_events in enumerate(runs_of(events_of(rebuilt, actions), cuts)):
                context = books if k % 2 == 0 else None  # without a codebook: the run encodes the answers itself
                pairs = []
                for e, env in run_events:
                    # As a reader process sends it: the record through a pickle, the envelope as a stamp.
                    record = pickle.loads(pickle.dumps(counted.rebuild_prepare(e, env, context)))
                    pairs.append((e, env) if record is None else (record, Stamp.of(env)))
                async with engine.begin() as conn:
                    await counted.rebuild_handler(conn, pairs)
            async with engine.begin() as conn:
                await settle(conn, [rebuilt])
            async with engine.connect() as conn:
                rebuilt_state = await state_of(conn, rebuilt)
                owed = (await conn.execute(text("SELECT count(*) FROM sc_recounts_owed WHERE campaign_id = :c"),
                                           {"c": rebuilt})).scalar()
                assert owed == 0
                found = (await state_of(conn, one_by_one), await state_of(conn, by_runs),
                         await recount(conn, await definitions.basis(conn, one_by_one)))
                await conn.execute(text("UPDATE sc_ballots SET answer_codes = NULL WHERE campaign_id = :c"
                                        " AND right(ballot_id, 1) IN ('0', '2', '4', '6', '8')"), {"c": by_runs})
                return (*found, await recount(conn, await definitions.basis(conn, by_runs)), rebuilt_state)
        finally:
            await engine.dispose()

    return asyncio.run(run())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(action, max_size=30), st.lists(st.integers(0, 30), max_size=6))
def test_incremental_tallies_equal_a_recompute_from_the_events(database, actions, cuts):
    (incremental, rows), (run_tallies, run_rows), recounted, run_recounted, (rebuilt_tallies, rebuilt_rows) = (
        applied_both_ways(database, actions, cuts))
    truth = recompute(actions)
    assert incremental == truth   # kept event by event
    assert run_tallies == truth   # kept a run at a time
    assert rebuilt_tallies == truth and rebuilt_rows == rows  # rebuilt: rows run by run, tallies recounted once
    assert recounted == truth == run_recounted  # the operators' recount from the counted ballots agrees too
    assert run_rows == rows       # the same counted-ballot rows and tombstones, column for column
    for row in rows:              # answer codes for what the instrument can say, JSONB only for the rest
        assert (row[-1] is not None) == (row[7] is not None and "KN1" not in row[8])


def test_one_run_accepting_voiding_and_repeating_a_ballot(database):
    """All in one run: a ballot accepted, repeated, voided, accepted again; a void before its acceptance;
    a ballot voided twice; ballots stored by an earlier run voided and repeated."""
    answered = {ITEMS[0]: 4, ITEMS[1]: 2, ITEMS[2]: None}
    earlier = [("accept", 1, answered, "a1", ["KN1"]), ("accept", 2, {ITEMS[0]: 5}, "a2", [])]
    actions = [*earlier,
               ("accept", 3, answered, "a1", []), ("accept", 3, {ITEMS[0]: 1}, "a2", []), ("void", 3, {}, "", []),
               ("accept", 3, answered, "a1", []), ("void", 4, {}, "", []), ("accept", 4, answered, "a3", []),
               ("void", 1, {}, "", []), ("void", 1, {}, "", []), ("accept", 2, answered, "a3", ["KN2"]),
               ("accept", 5, answered, "a3", ["KN1", "KN3"]), ("void", 6, {}, "", [])]
    (tallies_each, rows_each), (tallies_run, rows_run), _, recounted, (tallies_rebuilt, rows_rebuilt) = (
        applied_both_ways(database, actions, [len(earlier)]))
    truth = recompute(actions)
    assert tallies_run == tallies_each == truth == recounted == tallies_rebuilt
    assert rows_run == rows_each == rows_rebuilt
    assert {(r[0], r[9]) for r in rows_run} == {("-b1", "voided"), ("-b2", "accepted"), ("-b3", "voided"),
                                               ("-b4", "voided"), ("-b5", "accepted"), ("-b6", "voided")}
    assert truth[("a3", "ballots")] == 1 and ("a2", "ballots") in truth and ("a1", "ballots") not in truth


def test_a_rebuild_stopped_half_way_leaves_tallies_owed_and_the_next_run_settles_them(database):
    """The process dies during a rebuild: runs so far wrote ballots and owed their tallies. The consumer
    then resumes with live runs, which settle the campaign (one recount) before they add to it."""
    actions = [("accept", k, {ITEMS[k % 8]: 1 + k % 5, ITEMS[(k + 3) % 8]: None}, AGENCIES[k % 3], ["E1"][: k % 2])
               for k in range(12)] + [("void", 2, {}, "", []), ("accept", 2, {ITEMS[0]: 5}, "a1", [])]

    async def run(engine, campaign_id, events):
        async with engine.begin() as conn:
            await counted.rebuild_handler(conn, events[:7])
        async with engine.connect() as conn:
            owed = (await conn.execute(text("SELECT campaign_id FROM sc_recounts_owed"))).scalars().all()
            partial, _ = await state_of(conn, campaign_id)
        async with engine.begin() as conn:
            await counted.run_handler(conn, events[7:])
        async with engine.connect() as conn:
            left = (await conn.execute(text("SELECT count(*) FROM sc_recounts_owed"))).scalar()
            return campaign_id, owed, partial, (await state_of(conn, campaign_id))[0], left

    campaign_id, owed, partial, tallies, left = on_a_new_campaign(database, actions, run)
    assert campaign_id in owed and partial == {}  # owed, not counted by halves
    assert tallies == recompute(actions) and left == 0


def test_a_run_meeting_a_ballot_stored_meanwhile_fails_whole_and_leaves_nothing(database, monkeypatch):
    """Another writer stores one of a run's new ballots after the run read which of its ballots were stored
    (simulated: the read finds none). The run's COPY meets the stored row: the run fails with ``RunConflict``
    (the consumer then applies it event by event) and, its savepoint undone, leaves no ballot and no tally."""
    from sipas_scoring.projections import tallies as module

    actions = [("accept", 1, {ITEMS[0]: 4}, "a1", []), ("accept", 2, {ITEMS[1]: 5}, "a2", ["E1"])]

    async def run(engine, campaign_id, events):
        async with engine.begin() as conn:
            await counted.handlers["BallotAccepted"](conn, *events[1])  # the other writer, first
        async with engine.connect() as conn:
            before = await state_of(conn, campaign_id)
        monkeypatch.setattr(module, "_KNOWN", text(f"{module._KNOWN.text} WHERE false"))
        async with engine.begin() as conn:
            with pytest.raises(module.RunConflict, match="stored meanwhile"):
                async with conn.begin_nested():
                    await counted.run_handler(conn, events)
            await conn.execute(text("SELECT 1"))  # the transaction goes on after its savepoint
        async with engine.connect() as conn:
            return before, await state_of(conn, campaign_id)

    before, after = on_a_new_campaign(database, actions, run)
    assert after == before and len(before[1]) == 1  # only the other writer's ballot, and its tallies
