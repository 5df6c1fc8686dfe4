"""Property: the quality scan, which streams a campaign's open ballots enumerator by enumerator, raises
in PostgreSQL exactly the flags that checking every ballot at once gives (``domain.quality.scan_flags``);
and scanning again raises nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections import Counter

import pytest
from conftest import service_database
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import create_async_engine

from sipas_ballots.adapters.tables import accepted, ballot_flags
from sipas_ballots.application.quality import scan
from sipas_ballots.domain.quality import Scanned, scan_flags

ITEMS = [f"{f}.{i}" for f in range(1, 4) for i in range(1, 5)]  # 12 items: straight-lining needs 10 answered
_campaigns = itertools.count()

# Small alphabets, so that straight-lining, near-identical pairs and speeders all happen often.
answers = st.one_of(
    st.fixed_dictionaries({k: st.sampled_from([4, 5, None]) if i % 3 else st.sampled_from([5, 5, 4])
                           for i, k in enumerate(ITEMS)}),
    st.fixed_dictionaries({k: st.sampled_from([5, 5, 5, None]) for k in ITEMS}),  # often straight-lined
)
ballot = st.tuples(answers, st.sampled_from(["paper", "online", "kiosk"]),
                   st.one_of(st.none(), st.sampled_from([3.0, 40.0, 90.0, 100.5, 240.0])),
                   st.sampled_from([None, "enum-a", "enum-b", "enum-c"]), st.booleans())


@pytest.fixture(scope="module")
def database(stack):
    return service_database(stack, "ballots")


def scanned_in_postgres(database: str, campaign_id: str, ballots) -> tuple[dict, dict, dict, list]:
    async def run():
        engine = create_async_engine(database)
        try:
            async with engine.begin() as conn:
                if ballots:
                    await conn.execute(insert(accepted), [{
                        "ballot_id": f"{campaign_id}-b{i:03d}", "campaign_id": campaign_id, "unit_id": f"u{i}",
                        "channel": channel, "answers": given_answers, "expectations": [], "entered_by": who,
                        "entry_seconds": seconds, "accepted_at": dt.datetime(2026, 5, 1, tzinfo=dt.UTC),
                        "voided": voided} for i, (given_answers, channel, seconds, who, voided) in enumerate(ballots)])
            async with engine.begin() as conn:
                first = await scan(conn, campaign_id)
            async with engine.begin() as conn:
                second = await scan(conn, campaign_id)
            async with engine.connect() as conn:
                stored = {(r.ballot_id, r.kind): r.reason for r in await conn.execute(
                    select(ballot_flags).where(ballot_flags.c.campaign_id == campaign_id))}
                rows = [Scanned(r.ballot_id, r.channel, r.entry_seconds, r.entered_by, r.answers)
                        for r in await conn.execute(select(accepted).where(accepted.c.campaign_id == campaign_id,
                                                                           accepted.c.voided.is_(False)))]
            return first, second, stored, rows
        finally:
            await engine.dispose()

    return asyncio.run(run())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(ballot, max_size=40))
def test_the_streamed_scan_raises_exactly_the_flags_of_checking_every_ballot_at_once(database, ballots):
    campaign_id = f"qs{next(_campaigns)}"
    first, second, stored, rows = scanned_in_postgres(database, campaign_id, ballots)
    expected = scan_flags(rows)
    event(f"kinds flagged: {sorted({kind for _, kind in expected})}")
    assert stored == expected
    assert first == dict(Counter(kind for _, kind in expected))  # new flags by kind
    assert second == {}  # idempotent
    voided = {f"{campaign_id}-b{i:03d}" for i, b in enumerate(ballots) if b[4]}
    assert not {ballot_id for ballot_id, _ in stored} & voided  # a voided ballot is never flagged


def test_a_scan_of_many_enumerators_finds_each_enumerators_near_identical_ballots(database):
    """Ballots of one vector spread over enumerators: only an enumerator's own pairs count."""
    same = dict.fromkeys(ITEMS, 4) | {ITEMS[0]: 5}
    ballots = [(same, "paper", 100.0, f"enum-{i % 3}", False) for i in range(7)] + [
        (same, "paper", 100.0, "enum-solo", False), (same, "online", 100.0, None, False)]
    campaign_id = f"qs{next(_campaigns)}"
    first, _, stored, rows = scanned_in_postgres(database, campaign_id, ballots)
    assert stored == scan_flags(rows)
    near = {b for b, kind in stored if kind == "near_identical"}
    assert len(near) == 7 and first == {"near_identical": 7}  # enum-solo and the online ballot have no sibling
