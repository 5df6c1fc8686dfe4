"""The reference projection's run handler leaves exactly the tables its handlers leave one event at a time
(real PostgreSQL): random streams of the registry's unit events — registrations (some of an agency already
registered), renames, reparentings, merges, splits and dissolutions — cut into random runs."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import MetaData, select
from sqlalchemy.ext.asyncio import create_async_engine

from sipas_events.catalogue import registry as ev
from sipas_events.envelope import Envelope
from sipas_kit.reference import ReferenceTables, reference_projection

IDS = [f"a{k}" for k in range(4)]
DAY = st.dates(dt.date(2020, 1, 1), dt.date(2026, 12, 31))
NAME = st.sampled_from(["Xã Một", "Phường Hai", "Sở Ba"])


def _events() -> st.SearchStrategy[list[Any]]:
    """Streams where registrations come in stretches (as an import's do), among the other unit events."""
    agency = st.sampled_from(IDS)
    registered = st.builds(ev.AgencyRegistered, agency_id=agency, code=st.sampled_from(["C1", "C2"]), name=NAME,
                           level=st.just("commune"), parent_id=st.none() | agency, province=st.just("01"),
                           valid_from=DAY, valid_to=st.none() | DAY)
    other = st.one_of(
        st.builds(ev.AgencyRenamed, agency_id=agency, name=NAME, previous_name=NAME, effective_date=DAY,
                  legal_basis=st.just("NQ 1")),
        st.builds(ev.AgencyReparented, agency_id=agency, parent_id=st.none() | agency,
                  previous_parent_id=st.none(), effective_date=DAY, legal_basis=st.just("NQ 2")),
        st.builds(ev.AgencyMerged, predecessor_ids=st.lists(agency, min_size=1, max_size=3, unique=True),
                  successor_id=agency, effective_date=DAY, legal_basis=st.just("NQ 3")),
        st.builds(ev.AgencySplit, predecessor_id=agency, successor_ids=st.lists(agency, min_size=2, max_size=3,
                                                                                  unique=True),
                  effective_date=DAY, legal_basis=st.just("NQ 4")),
        st.builds(ev.AgencyDissolved, agency_id=agency, effective_date=DAY, legal_basis=st.just("NQ 5")),
    )
    parts = st.lists(st.lists(registered, min_size=1, max_size=8) | other.map(lambda e: [e]), min_size=1, max_size=10)
    return parts.map(lambda listed: [e for part in listed for e in part])


def _envelope(event: Any, position: int) -> Envelope:
    return Envelope(id=uuid.uuid4(), source="/sipas/registry", type=event.event_type(), subject="test",
                    time=dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=position),
                    data=event.payload(), sequence=1, position=position, correlationid="test", actor="test")


@pytest.fixture
def two_databases(stack):  # type: ignore[no-untyped-def]
    names = [f"t_ref_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    for name in names:
        stack.pg.create_database(name)
    yield [stack.pg.url(name) for name in names]
    for name in names:
        stack.pg.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_runs_leave_the_tables_events_one_by_one_leave(two_databases: list[str]) -> None:
    metadata = MetaData()
    tables = ReferenceTables.on(metadata)
    projection = reference_projection(tables)
    assert projection.run_handler is not None
    loop = asyncio.new_event_loop()  # one loop for the engines' connections, whatever example runs
    one_by_one, in_runs = (create_async_engine(url) for url in two_databases)

    async def create() -> None:
        for engine in (one_by_one, in_runs):
            async with engine.begin() as conn:
                await conn.run_sync(metadata.create_all)

    async def state(engine: Any) -> dict[str, list[tuple[Any, ...]]]:
        async with engine.connect() as conn:
            return {table.name: sorted(tuple(r) for r in await conn.execute(select(table)))
                    for table in (tables.agencies, tables.links)}

    async def compare(events: list[Any], cuts: list[int]) -> int:
        stream = [(e, _envelope(e, k)) for k, e in enumerate(events, start=1)]
        for engine in (one_by_one, in_runs):
            async with engine.begin() as conn:
                for table in (tables.agencies, tables.links):
                    await conn.execute(table.delete())
        async with one_by_one.begin() as conn:
            for e, env in stream:
                await projection.handlers[env.event_name](conn, e, env)
        bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
        for start, end in itertools.pairwise(bounds):
            async with in_runs.begin() as conn:
                await projection.run_handler(conn, stream[start:end])  # type: ignore[misc]
        expected = await state(one_by_one)
        assert await state(in_runs) == expected
        return len(expected["ref_agencies"])

    found: list[int] = []

    @settings(max_examples=25, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(events=_events(), cuts=st.lists(st.integers(0, 40), max_size=6))
    def check(events: list[Any], cuts: list[int]) -> None:
        found.append(loop.run_until_complete(compare(events, cuts)))

    try:
        loop.run_until_complete(create())
        check()
    finally:
        for engine in (one_by_one, in_runs):
            loop.run_until_complete(engine.dispose())
        loop.close()
    assert max(found) > 2  # the streams registered several agencies, not only none
