"""The database engine, created at start-up from settings (never at import).

A pooled connection that the server has closed (a restart, ``pg_terminate_backend``, an idle timeout)
is replaced at checkout: asyncpg notices the closed socket on the event loop while the connection
sits in the pool, so ``is_closed()`` answers without a round trip. SQLAlchemy's ``pool_pre_ping``
would ask the server instead, and with asyncpg that is three round trips (``BEGIN``, an empty
statement, ``ROLLBACK``) on every checkout: six of a submission's dozen in the ballots benchmark. A
connection that dies unnoticed in between (no FIN reached the client) fails its statement, which the
problem handler answers as a 503 to retry, and the pool then replaces it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def make_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    engine = create_async_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800,
        connect_args={"server_settings": {"application_name": "sipas", "timezone": "UTC"}},
    )
    event.listen(engine.sync_engine, "checkout", _replace_if_closed)
    return engine


def _replace_if_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    is_closed = getattr(getattr(dbapi_connection, "driver_connection", None), "is_closed", None)
    if is_closed is not None and is_closed():
        raise DisconnectionError("the server closed this pooled connection")  # the pool connects anew
