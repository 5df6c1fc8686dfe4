"""Alembic, per service: each service package carries ``migrations/`` beside its code.

``run_env`` is what every service's ``migrations/env.py`` calls; ``upgrade`` and ``is_current``
are used by ``sipas migrate``, the embedded stack and ``/readyz``.
"""

from __future__ import annotations

import asyncio
import importlib.resources
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def config_for(package: str, url: str | None = None) -> Config:
    location = Path(str(importlib.resources.files(package) / "migrations"))
    cfg = Config()
    cfg.set_main_option("script_location", str(location))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(package: str, url: str, revision: str = "head") -> None:
    command.upgrade(config_for(package, url), revision)


def head_revision(package: str) -> str | None:
    return ScriptDirectory.from_config(config_for(package)).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


def run_env(target_metadata: list[MetaData]) -> None:
    """Body of a service's ``env.py``: run migrations online over asyncpg."""
    from alembic import context

    url = context.config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    def migrate(conn: Connection) -> None:
        context.configure(connection=conn, target_metadata=target_metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)  # type: ignore[arg-type]
        async with engine.connect() as conn:
            await conn.run_sync(migrate)
        await engine.dispose()

    asyncio.run(main())


def comment_columns(op: Any, comments: Sequence[tuple[str, str, str | None]]) -> None:
    """A migration's column comments: ``(table, column, comment)``, None to remove one."""
    for table, column, comment in comments:
        op.alter_column(table, column, comment=comment)
