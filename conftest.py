"""Shared fixtures: one throwaway embedded stack (real PostgreSQL, real NATS JetStream) per run.

Every test gets its own database, created from a template that already holds the backbone
tables, and a JetStream server with no streams left over from an earlier test.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sipas_cli.stack import EmbeddedNats, EmbeddedPostgres, free_port

TEMPLATE = "sipas_backbone_template"


@dataclass
class Stack:
    pg: EmbeddedPostgres
    nats: EmbeddedNats
    root: Path


def traversable_tmp(prefix: str) -> Path:
    """A scratch folder PostgreSQL's unprivileged user can reach (pytest's own are 0700 under root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    root = traversable_tmp("sipas-stack-")
    pg = EmbeddedPostgres(root / "pg", port=free_port())
    nats = EmbeddedNats(root / "nats", port=free_port(), monitor_port=free_port())
    pg.start()
    nats.start()
    pg.create_database(TEMPLATE)
    # In a thread: this fixture may be first requested from inside a running event loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _create_backbone(pg.url(TEMPLATE))).result()
    try:
        yield Stack(pg, nats, root)
    finally:
        nats.stop()
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


async def _create_backbone(url: str) -> None:
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.ext.asyncio import create_async_engine

    from sipas_events.migrations import v1_upgrade

    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: v1_upgrade(Operations(MigrationContext.configure(c))))
    await engine.dispose()


@pytest.fixture
def fresh_db(stack: Stack) -> Iterator[str]:
    """A new database with the backbone tables; yields its SQLAlchemy URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    stack.pg.psql(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    yield stack.pg.url(name)
    stack.pg.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def engine(fresh_db: str) -> AsyncIterator[object]:
    from sqlalchemy.ext.asyncio import create_async_engine

    eng = create_async_engine(fresh_db, pool_size=20, max_overflow=10)
    yield eng
    await eng.dispose()


@pytest.fixture
async def jetstream(stack: Stack) -> AsyncIterator[object]:
    """A connected JetStreamBus over a server emptied of streams."""
    from sipas_events.bus.jetstream import JetStreamBus

    if not stack.nats.is_running():
        stack.nats.start()
    bus = await JetStreamBus.connect(stack.nats.url, name="tests")
    js = bus._js
    for name in await js.streams_info():
        await js.delete_stream(name.config.name)
    yield bus
    await bus.close()


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("SIPAS_LOG_FORMAT", "console")
