"""Each service's migrations build the schema its code declares: a database migrated to head compared with
the tables, columns, types and indexes of the service's SQLAlchemy models (alembic's own comparison), so a
model changed without a migration — or a migration without the model — fails here, not in production."""

from __future__ import annotations

import asyncio
import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from conftest import service_database
from sqlalchemy import Column, MetaData
from sqlalchemy.ext.asyncio import create_async_engine

SERVICES = ("registry", "sampling", "ballots", "scoring", "publishing")


def declared(service: str) -> list[MetaData]:
    """What the service's alembic environment compares against (``migrations/env.py``), and the audit trail's
    table (created by every service's audit migration)."""
    from sipas_events.schema import metadata as backbone
    from sipas_kit.audit import metadata as audit

    tables = importlib.import_module(f"sipas_{service}.adapters.tables")
    return [backbone, tables.metadata, audit]


def differences(url: str, metadata: list[MetaData]) -> list:
    known = {name for m in metadata for name in m.tables}

    def compare(conn) -> list:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, metadata)

    async def run() -> list:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(compare)
        finally:
            await engine.dispose()

    found = asyncio.run(run())
    # Tables the models do not declare (alembic's version table, projections of other libraries) are not
    # this comparison's business; everything about a declared table is. An index over expressions (a column
    # with a collation) is reflected without them, so alembic sees it removed and added again: such an index
    # is compared by name only.
    expressions = {d[1].name for d in found if isinstance(d, tuple) and d[0] == "add_index"
                   and any(not isinstance(e, Column) for e in d[1].expressions)}
    removed = {d[1].name for d in found if isinstance(d, tuple) and d[0] == "remove_index"}
    return [d for d in found if not (isinstance(d, tuple) and (
        (d[0] == "remove_table" and d[1].name not in known)
        or (d[0] in ("add_index", "remove_index") and d[1].name in expressions & removed)))]


@pytest.mark.parametrize("service", SERVICES)
def test_migrated_schema_is_the_declared_one(stack, service):
    assert differences(service_database(stack, service), declared(service)) == []
