"""Binary COPY through the asyncpg connection under a SQLAlchemy one."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection


async def copy_records(conn: AsyncConnection, table: str, columns: Sequence[str],
                       records: Iterable[tuple[Any, ...]]) -> None:
    """COPY ``records`` into ``table`` in ``conn``'s transaction, which must have begun (a statement run
    through ``conn`` first): the driver's COPY knows nothing of a transaction SQLAlchemy has not opened yet.
    A row that breaks a constraint fails the whole COPY (asyncpg's error, e.g. ``UniqueViolationError``)."""
    raw = await conn.get_raw_connection()
    await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
        table, records=records, columns=list(columns))
