"""The embedded stack against real processes: PostgreSQL and NATS JetStream from their PyPI wheels."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import nats
import psutil
import pytest
from nats.js.api import StorageType

from sipas_cli.stack import EmbeddedNats, EmbeddedPostgres, PsqlError, free_port, port_in_use

# ---- helpers --------------------------------------------------------------------------------------


async def _fetchval(dsn: str, sql: str) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def _postmaster_pid(pg: EmbeddedPostgres) -> int:
    return int((pg.pgdata / "postmaster.pid").read_text().splitlines()[0])


async def _publish(url: str, subject: str, payload: bytes) -> int:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="ORDERS", subjects=["orders.>"], storage=StorageType.FILE)
        return (await js.publish(subject, payload)).seq
    finally:
        await nc.close()


async def _stored(url: str, seq: int) -> tuple[int, bytes]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info("ORDERS")
        msg = await js.get_msg("ORDERS", seq)
        return info.state.messages, msg.data or b""
    finally:
        await nc.close()


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """Where the servers keep their data.

    As root, PostgreSQL runs as another user who must traverse every parent directory, and any pytest
    session that starts resets /tmp/pytest-of-root to 0700, crashing a server under tmp_path. A fresh
    directory directly in /tmp is immune to that.
    """
    if os.geteuid() != 0:
        yield tmp_path
        _kill_strays(tmp_path)
        return
    path = Path(tempfile.mkdtemp(prefix="sipas-test-stack-"))
    yield path
    _kill_strays(path)
    shutil.rmtree(path, ignore_errors=True)


def _kill_strays(path: Path) -> None:
    """A test that failed half-way may leave a server running on path: it must not outlive the run."""
    inside = f"{path}{os.sep}"
    for proc in psutil.process_iter(["cmdline"]):
        if any(inside in arg for arg in proc.info["cmdline"] or []):
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass


@pytest.fixture
def pg(workdir: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(workdir / "pg", port=free_port())
    server.start()
    yield server
    server.stop("immediate")


@pytest.fixture
def listener() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


# ---- ports ----------------------------------------------------------------------------------------


def test_free_port_is_free_and_a_listener_is_not(listener: int) -> None:
    assert not port_in_use(free_port())
    assert port_in_use(listener)


# ---- PostgreSQL -----------------------------------------------------------------------------------


def test_postgres_creates_databases_and_accepts_connections(pg: EmbeddedPostgres) -> None:
    pg.create_database("app")
    pg.create_database("app")  # idempotent: every `make run` calls it

    assert pg.url("app") == f"postgresql+asyncpg://postgres@127.0.0.1:{pg.port}/app"
    assert pg.dsn("app") == f"postgresql://postgres@127.0.0.1:{pg.port}/app"
    assert asyncio.run(_fetchval(pg.dsn("app"), "select 1")) == 1
    assert pg.psql("show max_connections").strip() == "300"
    assert pg.psql("show fsync").strip() == "on"

    pg.drop_database("app")
    pg.drop_database("app")
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        asyncio.run(_fetchval(pg.dsn("app"), "select 1"))


def test_psql_errors_carry_the_sqlstate(pg: EmbeddedPostgres) -> None:
    with pytest.raises(PsqlError) as err:
        pg.psql("select * from no_such_table")
    assert err.value.sqlstate == "42P01"


def test_committed_rows_survive_an_immediate_stop_and_a_crash(pg: EmbeddedPostgres) -> None:
    pg.create_database("app")
    pg.psql("create table kept (id int primary key); insert into kept values (1)", "app")

    pg.stop("immediate")
    assert not pg.is_running()
    pg.start()  # crash recovery replays the WAL
    pg.psql("insert into kept values (2)", "app")

    pg.kill()  # SIGKILL of the postmaster only: its backends still hold shared memory for a moment
    pg.start()
    assert pg.is_running()
    assert asyncio.run(_fetchval(pg.dsn("app"), "select count(*) from kept")) == 2


def test_a_leftover_server_of_a_crashed_handle_is_replaced(workdir: Path) -> None:
    port = free_port()
    crashed = EmbeddedPostgres(workdir / "pg", port=port)
    crashed.start()
    crashed.psql("create table survivor (id int)")
    leftover = psutil.Process(_postmaster_pid(crashed))
    del crashed  # dropped without stop(): the postmaster keeps running and holds the port

    second = EmbeddedPostgres(workdir / "pg", port=port)
    second.start()
    try:
        assert not leftover.is_running()
        assert _postmaster_pid(second) != leftover.pid
        assert second.psql("select count(*) from survivor").strip() == "0"
    finally:
        second.stop()
    assert not second.is_running()
    assert not port_in_use(port)


def test_postgres_refuses_a_taken_port_with_a_clear_error(workdir: Path, listener: int) -> None:
    with pytest.raises(RuntimeError, match=f"127.0.0.1:{listener} is taken"):
        EmbeddedPostgres(workdir / "pg", port=listener).start()


def test_postgres_context_manager_stops_the_server(workdir: Path) -> None:
    with EmbeddedPostgres(workdir / "pg", port=free_port()) as server:
        assert server.psql("select 1").strip() == "1"
        pid = _postmaster_pid(server)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


# ---- NATS -----------------------------------------------------------------------------------------


def _nats(root: Path, sync_always: bool = False) -> EmbeddedNats:
    return EmbeddedNats(root / "nats", port=free_port(), monitor_port=free_port(), sync_always=sync_always)


def test_jetstream_messages_survive_a_restart(workdir: Path) -> None:
    server = _nats(workdir)
    server.start()
    try:
        assert server.url == f"nats://127.0.0.1:{server.port}"
        seq = asyncio.run(_publish(server.url, "orders.1", b"hello"))
        assert (server.store_dir / "$G" / "streams" / "ORDERS").is_dir()  # file storage in data_dir/jetstream
        server.restart()
        assert server.is_running()
        assert asyncio.run(_stored(server.url, seq)) == (1, b"hello")
    finally:
        server.stop()
    assert not server.is_running()
    assert not server.pidfile.exists()


def test_synced_jetstream_messages_survive_a_kill(workdir: Path) -> None:
    server = _nats(workdir, sync_always=True)
    server.start()
    try:
        assert "sync_interval: always" in server.conf.read_text()
        seq = asyncio.run(_publish(server.url, "orders.1", b"synced"))
        server.kill()
        assert not server.is_running()
        server.start()
        assert asyncio.run(_stored(server.url, seq)) == (1, b"synced")
    finally:
        server.stop()


def test_a_leftover_nats_of_a_crashed_handle_is_replaced(workdir: Path) -> None:
    crashed = _nats(workdir)
    crashed.start()
    ports = crashed.port, crashed.monitor_port
    leftover = psutil.Process(int(crashed.pidfile.read_text()))
    del crashed  # dropped without stop(): the server keeps running and holds both ports

    second = EmbeddedNats(workdir / "nats", port=ports[0], monitor_port=ports[1])
    second.start()
    try:
        assert not leftover.is_running()
        assert int(second.pidfile.read_text()) != leftover.pid
        asyncio.run(_publish(second.url, "orders.1", b"after"))
    finally:
        second.stop()


# ---- the platform's migrations ----------------------------------------------------------------------


def test_migrations_that_fail_are_each_named_with_their_output(stack, monkeypatch: pytest.MonkeyPatch,
                                                                 workdir: Path) -> None:
    """The databases are migrated at once; each that cannot be says which it is and why (here: two of them, which
    do not exist on the real server)."""
    from sipas_cli import platform

    monkeypatch.setattr(platform, "SERVICES", ("registry", "scoring"))
    for service in platform.SERVICES:
        monkeypatch.setenv(f"SIPAS_{service.upper()}_DATABASE_URL", stack.pg.url(f"missing_{service}"))
    with pytest.raises(RuntimeError) as failed:
        platform.Platform(workdir, ports={}).migrate()
    message = str(failed.value)
    for service in platform.SERVICES:
        assert f"migrating sipas_{service} exited with 1" in message
        assert f'database "missing_{service}" does not exist' in message
