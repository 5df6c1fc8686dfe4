"""The kit's engine over real PostgreSQL: a pooled connection the server closed is replaced at checkout
(without pinging the server on every checkout)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from sipas_kit.db import make_engine


async def test_a_connection_the_server_closed_is_replaced_at_checkout(fresh_db, stack):
    engine = make_engine(fresh_db, pool_size=1)
    try:
        async with engine.connect() as conn:
            first = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
            driver = (await conn.get_raw_connection()).driver_connection  # asyncpg's, to watch it close
        async with engine.connect() as conn:  # the same pooled connection, still good
            assert (await conn.execute(text("SELECT pg_backend_pid()"))).scalar() == first
        stack.pg.psql(f"SELECT pg_terminate_backend({int(first)})")
        for _ in range(500):  # until the client has seen the server close it (the event loop reads the socket)
            if driver.is_closed():
                break
            await asyncio.sleep(0.01)
        assert driver.is_closed()
        async with engine.connect() as conn:  # replaced, not an error
            second = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
        assert second != first
        async with engine.begin() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await engine.dispose()

