"""Canonical export of projection tables: a stable sort, canonical JSON lines, one SHA-256.

A rebuilt projection must export byte for byte what the live one exported, so projections store
only values derived from events (event times, never ``now()`` at apply time).

A table whose stored form is not canonical (e.g. counts kept in an order of first appearance, which a
rebuild does not reproduce) names its canonical rows in ``Table.info["export"]``: a SQL query returning
them in a stable order, exported under the table's name; ``None`` there leaves the table out of the export
(its content is part of another table's canonical rows). The table is still truncated by a rebuild.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import Table, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events import canonical


async def export_rows(conn: AsyncConnection, tables: Sequence[Table]) -> AsyncIterator[dict[str, Any]]:
    for table in sorted(tables, key=lambda t: t.name):
        if "export" in table.info:
            query = table.info["export"]
            if query is None:
                continue
            result = await conn.stream(text(query))
        else:
            order = list(table.primary_key.columns) or list(table.columns)
            result = await conn.stream(select(table).order_by(*order))
        async for row in result.mappings():
            yield {"table": table.name, "row": dict(row)}


async def export_digest(conn: AsyncConnection, tables: Sequence[Table]) -> tuple[str, int]:
    """(SHA-256 hex of the canonical export, number of rows)."""
    digest, count = hashlib.sha256(), 0
    async for line in export_rows(conn, tables):
        digest.update(canonical.dumpb(line))
        digest.update(b"\n")
        count += 1
    return digest.hexdigest(), count
