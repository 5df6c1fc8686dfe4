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

# The CLI's consoles (rich) fix their width when made if COLUMNS is set then: the shell's width must not leak
# into the commands the tests run in-process, which say theirs (``CliRunner.invoke(env={"COLUMNS": ...})``).
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)

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


def wait_for(fn, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    """Poll ``fn`` until it returns something truthy (eventual consistency between services)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s")


async def wait_for_async(check, timeout: float = 60.0, every: float = 0.05) -> None:  # type: ignore[no-untyped-def]
    """Await ``check()`` until it is true; fail after ``timeout`` seconds (a bound, not a measurement)."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s")
        await asyncio.sleep(every)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def headless_chromium(size: tuple[int, int] = (1280, 1000), phone: bool = False,
                      prefs: dict[str, object] | None = None) -> object:
    """Debian's chromium through chromium-driver, headless. Without the driver the test fails under CI
    (``.ci/run`` installs it) and skips elsewhere: a developer without it can still run the rest."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    driver = shutil.which("chromedriver")
    if driver is None:
        if in_ci():
            pytest.fail("CI must run the browser tests, but chromium-driver is not installed: see .ci/run")
        pytest.skip("chromium-driver is not installed (apt-get install chromium chromium-driver)")
    os.environ["SE_AVOID_STATS"] = "true"  # no network calls from the test
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={size[0]},{size[1]}"):
        options.add_argument(arg)
    if phone:
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": {"width": size[0], "height": size[1],
                                                                              "pixelRatio": 3.0}})
    if prefs:
        options.add_experimental_option("prefs", prefs)
    return webdriver.Chrome(options=options, service=Service(driver))


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


# ---- one service in-process over the real stack ----------------------------------------------

_SERVICE_TEMPLATES: dict[str, str] = {}


def service_database(stack: Stack, service: str) -> str:
    """A fresh database migrated to head for ``sipas_<service>`` (cloned from a per-run template)."""
    from sipas_kit import migrations

    template = f"tpl_sipas_{service}"
    if service not in _SERVICE_TEMPLATES:
        stack.pg.psql(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
        stack.pg.create_database(template)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # alembic's env runs its own event loop
            pool.submit(migrations.upgrade, f"sipas_{service}", stack.pg.url(template)).result()
        _SERVICE_TEMPLATES[service] = template
    name = f"t_{service}_{uuid.uuid4().hex[:10]}"
    stack.pg.psql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return stack.pg.url(name)


@dataclass
class Api:
    """A service app in this process (real Postgres, real NATS) and an HTTP client for it."""

    service: str
    client: object  # httpx.AsyncClient
    identity: object  # sipas_kit.auth.DevIdentity
    app: object
    database_url: str

    def auth(self, role: str, province: str | None = None, subject: str | None = None) -> dict[str, str]:
        token = self.identity.mint(subject or f"{role}-{province or 'national'}@test", role, province)  # type: ignore[attr-defined]
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def identity(stack: Stack) -> object:
    from sipas_kit.auth import DevIdentity

    return DevIdentity(stack.root / "keys").ensure()


@pytest.fixture
async def open_api(stack: Stack, identity: object) -> AsyncIterator[object]:
    """``await open_api("registry")`` starts that service's app in-process with its lifespan."""
    import contextlib
    import importlib

    import httpx

    from sipas_events.bus.jetstream import JetStreamBus

    # Each test starts from empty streams: no other test's events reach this test's consumers.
    bus = await JetStreamBus.connect(stack.nats.url, name="tests-reset")
    for info in await bus._js.streams_info():
        await bus._js.delete_stream(info.config.name)
    await bus.close()
    async with contextlib.AsyncExitStack() as exits:

        async def start(service: str, **overrides: object) -> Api:
            url = service_database(stack, service)
            exits.callback(stack.pg.psql, f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
            settings_mod = importlib.import_module(f"sipas_{service}.settings")
            settings_cls = next(v for k, v in vars(settings_mod).items()
                                if k.endswith("Settings") and k != "ServiceSettings")
            defaults = {"master_key_file": stack.root / "keys" / "sampling-master.key"} if service == "sampling" else {}
            settings = settings_cls(database_url=url, nats_url=stack.nats.url, log_format="console",
                                    jwt_jwks_file=identity.jwks_path, **defaults | overrides)  # type: ignore[attr-defined]
            app = importlib.import_module(f"sipas_{service}.entrypoints.app").create_app(settings)
            await exits.enter_async_context(app.router.lifespan_context(app))
            client = await exits.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{service}"))
            return Api(service, client, identity, app, url)

        yield start


async def apply_events(database_url: str, projection: object, events: list[object], producer: str) -> None:
    """Apply another service's events to a projection, exactly as its consumer would (one transaction
    per event), for tests that need a service's reference data without running the producer."""
    import datetime as dt

    from sqlalchemy.ext.asyncio import create_async_engine

    from sipas_events.envelope import Envelope
    from sipas_events.ids import new_id

    engine = create_async_engine(database_url)
    try:
        for position, event in enumerate(events, start=1):
            env = Envelope(id=new_id(), source=f"/sipas/{producer}", type=event.event_type(), subject="test",  # type: ignore[attr-defined]
                           time=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), data=event.payload(), sequence=1,  # type: ignore[attr-defined]
                           position=position, correlationid="test", actor="test")
            async with engine.begin() as conn:
                await projection.handlers[type(event).__name__](conn, event, env)  # type: ignore[attr-defined]
    finally:
        await engine.dispose()
