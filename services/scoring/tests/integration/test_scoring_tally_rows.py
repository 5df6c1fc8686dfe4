"""Tallies stored one row per agency in the campaign's key layout (``adapters.tally_rows``, migration 0012),
against real PostgreSQL: what is read is what was added, whatever order keys first came in and whatever they
hold; a count back at zero is no count; a change that would go below zero fails whole; two writers of one
campaign take turns and lose nothing; the projection's export is the key-per-row form; and migration 0012
converts key-per-row tallies both ways without changing that export."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from collections import Counter

import pytest
from conftest import service_database
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from sipas_events.export import export_rows
from sipas_scoring.adapters import tally_rows
from sipas_scoring.adapters.tables import TALLIES_EXPORT, tallies, tally_keys


@pytest.fixture(scope="module")
def database(stack):
    return service_database(stack, "scoring")


def run(coro):
    return asyncio.run(coro)


async def _with(url: str, body):
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            return await body(conn)
    finally:
        await engine.dispose()


async def _exported(conn, campaign_id: str) -> list[tuple[str, str, int]]:
    rows = await conn.execute(text(f"SELECT agency_id, key, count FROM ({TALLIES_EXPORT}) AS t WHERE campaign_id = :c"),
                              {"c": campaign_id})
    return [tuple(r) for r in rows]


def test_keys_first_seen_later_are_appended_and_earlier_counts_stay_right(database):
    c = f"c-{uuid.uuid4().hex[:8]}"

    async def body(conn):
        await tally_rows.add(conn, {(c, "a1"): {"ballots": 2, "item:Q1:5": 2}})
        await tally_rows.add(conn, {(c, "a2"): {"ballots": 1, "expect:E9": 1}, (c, "a1"): {"ballots": 1, "criteria": 1}})
        layout = (await conn.execute(text("SELECT keys FROM sc_tally_keys WHERE campaign_id = :c"), {"c": c})).scalar()
        stored = dict((await conn.execute(text("SELECT agency_id, counts FROM sc_tallies WHERE campaign_id = :c"),
                                          {"c": c})).all())
        return layout, stored, await tally_rows.read(conn, c), await tally_rows.read(conn, c, ["a2", "zz"])

    layout, stored, found, some = run(_with(database, body))
    assert layout == ["ballots", "item:Q1:5", "criteria", "expect:E9"]  # sorted within a change, appended after
    assert stored == {"a1": [3, 2, 1, 0], "a2": [1, 0, 0, 1]}  # a1's row was written before expect:E9 existed
    assert found == {"a1": Counter({"ballots": 3, "item:Q1:5": 2, "criteria": 1}),
                     "a2": Counter({"ballots": 1, "expect:E9": 1})}
    assert some == {"a2": found["a2"]}


def test_counts_back_at_zero_are_no_counts_and_a_row_of_zeros_is_deleted(database):
    c = f"c-{uuid.uuid4().hex[:8]}"

    async def body(conn):
        await tally_rows.add(conn, {(c, "a1"): {"ballots": 2, "item:Q1:4": 1, "item:Q1:5": 1},
                                    (c, "a2"): {"ballots": 1, "item:Q1:5": 1}})
        await tally_rows.add(conn, {(c, "a1"): {"ballots": -1, "item:Q1:4": -1}, (c, "a2"): {"ballots": -1,
                                                                                             "item:Q1:5": -1}})
        rows = (await conn.execute(text("SELECT agency_id FROM sc_tallies WHERE campaign_id = :c"), {"c": c})).all()
        return rows, await tally_rows.read(conn, c), await _exported(conn, c)

    rows, found, exported = run(_with(database, body))
    assert rows == [("a1",)]
    assert found == {"a1": Counter({"ballots": 1, "item:Q1:5": 1})}
    assert exported == [("a1", "ballots", 1), ("a1", "item:Q1:5", 1)]  # the zero of item:Q1:4 is not a row


def test_a_change_below_zero_fails_and_writes_nothing(database):
    c = f"c-{uuid.uuid4().hex[:8]}"
    run(_with(database, lambda conn: tally_rows.add(conn, {(c, "a1"): {"ballots": 1}})))

    async def below(conn):
        await tally_rows.add(conn, {(c, "a2"): {"ballots": 1, "new-key": 1}, (c, "a1"): {"ballots": -2}})

    with pytest.raises(tally_rows.NegativeCount, match="ballots would be -1"):
        run(_with(database, below))

    async def state(conn):
        layout = (await conn.execute(text("SELECT keys FROM sc_tally_keys WHERE campaign_id = :c"), {"c": c})).scalar()
        return layout, await tally_rows.read(conn, c)

    assert run(_with(database, state)) == (["ballots"], {"a1": Counter({"ballots": 1})})


KEYS = st.text(st.sampled_from('ab,{}"\\ :Q1é'), min_size=1, max_size=6)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(st.dictionaries(st.tuples(st.sampled_from(["a1", "a2", "a3"]), KEYS),
                                        st.integers(-3, 5), max_size=6), min_size=1, max_size=6))
def test_what_is_read_is_what_was_added_whatever_the_keys_hold(database, changes):
    """Keys with quotes, commas, braces, backslashes and spaces round-trip; a change that would take a count below
    zero is refused whole, so the kept state is always the sum of the changes that were accepted."""
    c = f"c-{uuid.uuid4().hex[:8]}"
    model: Counter[tuple[str, str]] = Counter()

    async def body(conn):
        for change in changes:
            after = model.copy()
            after.update(change)
            try:
                async with conn.begin_nested():
                    await tally_rows.add(conn, {(c, a): {k: n for (a2, k), n in change.items() if a2 == a}
                                                for a in {a for a, _ in change}})
            except tally_rows.NegativeCount:
                assert any(n < 0 for n in after.values())
                continue
            assert all(n >= 0 for n in after.values())
            model.clear()
            model.update({pair: n for pair, n in after.items() if n})
        return await tally_rows.read_pairs(conn, c), await _exported(conn, c)

    pairs, exported = run(_with(database, body))
    assert pairs == dict(model)
    assert sorted(exported) == sorted((a, k, n) for (a, k), n in model.items())


def test_a_recount_replaces_the_layout_with_its_keys_sorted(database):
    c = f"c-{uuid.uuid4().hex[:8]}"

    async def body(conn):
        await tally_rows.add(conn, {(c, "a1"): {"zeta": 1, "alpha": 1}})
        await tally_rows.add(conn, {(c, "a1"): {"beta": 2}})
        before = await _exported(conn, c)
        await tally_rows.replace(conn, c, {("a1", "beta"): 2, ("a1", "zeta"): 1, ("a1", "alpha"): 1, ("a2", "x"): 0})
        layout = (await conn.execute(text("SELECT keys FROM sc_tally_keys WHERE campaign_id = :c"), {"c": c})).scalar()
        return before, layout, await _exported(conn, c)

    before, layout, after = run(_with(database, body))
    assert layout == ["alpha", "beta", "zeta"]
    assert after == before  # the same canonical rows, whatever the layout's order


def test_two_writers_of_one_campaign_take_turns_and_lose_nothing(database):
    c = f"c-{uuid.uuid4().hex[:8]}"
    run(_with(database, lambda conn: tally_rows.add(conn, {(c, "a1"): {"ballots": 1}})))

    async def both():
        engine = create_async_engine(database)
        try:
            async with engine.connect() as first, engine.connect() as second:
                await first.begin()
                await tally_rows.add(first, {(c, "a1"): {"ballots": 1, "k1": 1}})

                async def other():
                    await second.begin()
                    await tally_rows.add(second, {(c, "a1"): {"ballots": 1, "k2": 1}})
                    await second.commit()

                waiting = asyncio.create_task(other())
                await asyncio.sleep(0.3)
                assert not waiting.done()  # held on the layout's row
                await first.commit()
                await waiting
            async with engine.connect() as conn:
                return await tally_rows.read(conn, c)
        finally:
            await engine.dispose()

    assert run(both()) == {"a1": Counter({"ballots": 3, "k1": 1, "k2": 1})}


def test_the_projection_exports_the_key_per_row_form_and_not_the_layout(database):
    c = f"c-{uuid.uuid4().hex[:8]}"

    async def body(conn):
        await tally_rows.add(conn, {(c, "a2"): {"b": 1}, (c, "a1"): {"b": 2, "a": 1}})
        return [line async for line in export_rows(conn, [tally_keys, tallies]) if line["row"]["campaign_id"] == c]

    assert run(_with(database, body)) == [
        {"table": "sc_tallies", "row": {"campaign_id": c, "agency_id": "a1", "key": "a", "count": 1}},
        {"table": "sc_tallies", "row": {"campaign_id": c, "agency_id": "a1", "key": "b", "count": 2}},
        {"table": "sc_tallies", "row": {"campaign_id": c, "agency_id": "a2", "key": "b", "count": 1}}]


def test_migration_0012_converts_key_per_row_tallies_both_ways(stack):
    from alembic import command

    from sipas_kit import migrations

    name = f"t_scoring_0012_{uuid.uuid4().hex[:8]}"
    stack.pg.create_database(name)
    url = stack.pg.url(name)
    config = migrations.config_for("sipas_scoring", url)
    rows = [("c1", "a1", "ballots", 3), ("c1", "a1", "item:Q1:5", 2), ("c1", "a1", "item:Q1:4", 0),
            ("c1", "a2", "ballots", 1), ("c1", "a2", 'odd "key", {x}', 1), ("c1", "a3", "ballots", 0),
            ("c2", "a1", "expect:E1", 4)]
    old = "SELECT agency_id, key, count FROM sc_tallies WHERE count <> 0 ORDER BY campaign_id, agency_id, key"
    new = f"SELECT agency_id, key, count FROM ({TALLIES_EXPORT}) AS t"

    def at(revision: str, direction=command.upgrade):
        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # alembic's env runs its own event loop
            pool.submit(direction, config, revision).result()

    async def fetch(sql: str) -> list[tuple]:
        async def body(conn):
            return [tuple(r) for r in (await conn.execute(text(sql))).all()]
        return await _with(url, body)

    async def insert(conn):
        await conn.execute(text("INSERT INTO sc_tallies (campaign_id, agency_id, key, count)"
                                " VALUES (:c, :a, :k, :n)"), [dict(zip("cakn", r, strict=True)) for r in rows])

    at("0011")
    run(_with(url, insert))
    before = run(fetch(old))
    at("head")
    assert run(fetch(new)) == before == [("a1", "ballots", 3), ("a1", "item:Q1:5", 2), ("a2", "ballots", 1),
                                         ("a2", 'odd "key", {x}', 1), ("a1", "expect:E1", 4)]
    assert run(fetch("SELECT campaign_id, keys FROM sc_tally_keys ORDER BY campaign_id")) == [
        ("c1", ["ballots", "item:Q1:5", 'odd "key", {x}']), ("c2", ["expect:E1"])]
    assert run(fetch("SELECT campaign_id, agency_id, counts FROM sc_tallies ORDER BY 1, 2")) == [
        ("c1", "a1", [3, 2, 0]), ("c1", "a2", [1, 0, 1]), ("c2", "a1", [4])]
    assert run(fetch("SELECT reloptions FROM pg_class WHERE oid = 'sc_tallies'::regclass")) == [(["fillfactor=70"],)]
    at("0011", command.downgrade)
    assert run(fetch(old)) == before
