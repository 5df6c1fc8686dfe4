"""The database engine, created at start-up from settings (never at import)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def make_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=1800,
        connect_args={"server_settings": {"application_name": "sipas", "timezone": "UTC"}},
    )
