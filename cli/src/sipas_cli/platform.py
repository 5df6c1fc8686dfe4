"""The whole platform as local processes: PostgreSQL, NATS and the five services.

Used by ``sipas up`` (and so ``make run``) and by the end-to-end tests, so both exercise exactly
the same start-up path. Each service runs as its own process with its own database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from sipas_cli.stack import EmbeddedNats, EmbeddedPostgres
from sipas_kit.auth import DevIdentity, Role

SERVICES = ("registry", "sampling", "ballots", "scoring", "publishing")
DEFAULT_PORTS = {"postgres": 15433, "nats": 14222, "nats_monitor": 18222,
                 "registry": 8101, "sampling": 8102, "ballots": 8103, "scoring": 8104, "publishing": 8105}


@dataclass
class Platform:
    home: Path
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    log_format: str = "json"
    pg: EmbeddedPostgres | None = None
    nats: EmbeddedNats | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def identity(self) -> DevIdentity:
        return DevIdentity(self.home / "keys")

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    # ---- infrastructure --------------------------------------------------------------------
    def start_infrastructure(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.identity.ensure()
        if not os.environ.get("SIPAS_DATABASE_URL"):
            self.pg = EmbeddedPostgres(self.home / "postgres", port=self.ports["postgres"])
            self.pg.start()
            for service in SERVICES:
                self.pg.create_database(f"sipas_{service}")
        if not os.environ.get("SIPAS_NATS_URL"):
            self.nats = EmbeddedNats(self.home / "nats", port=self.ports["nats"],
                                     monitor_port=self.ports["nats_monitor"],
                                     sync_always=os.environ.get("SIPAS_NATS_SYNC_ALWAYS") == "1")
            self.nats.start()

    def database_url(self, service: str) -> str:
        own = os.environ.get(f"SIPAS_{service.upper()}_DATABASE_URL")
        if own:
            return own
        shared = os.environ.get("SIPAS_DATABASE_URL")
        if shared:
            return f"{shared.rstrip('/')}/sipas_{service}"
        assert self.pg is not None
        return self.pg.url(f"sipas_{service}")

    @property
    def nats_url(self) -> str:
        if os.environ.get("SIPAS_NATS_URL"):
            return os.environ["SIPAS_NATS_URL"]
        assert self.nats is not None
        return self.nats.url

    def migrate(self, then_start: bool = False) -> None:
        """Upgrade every service's database, the five at once (each its own database and process: most of a
        migration is the interpreter importing alembic and the models, which one at a time took three times
        as long); with ``then_start``, each service starts as soon as its own database is at head. Each
        migration's output goes to ``logs/migrate-<service>.log``; a failure names its service and ends with
        that output (no service starts after one has failed)."""
        logs = self.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        pending = {}
        for service in SERVICES:
            env = os.environ | {f"SIPAS_{service.upper()}_DATABASE_URL": self.database_url(service)}
            with open(logs / f"migrate-{service}.log", "wb") as out:
                pending[service] = subprocess.Popen([sys.executable, "-m", "sipas_kit.migrate", f"sipas_{service}"],
                                                    env=env, stdout=out, stderr=subprocess.STDOUT)
        failed: list[str] = []
        while pending:
            for service, proc in list(pending.items()):
                if proc.poll() is None:
                    continue
                del pending[service]
                if proc.returncode:
                    output = (logs / f"migrate-{service}.log").read_text(errors="replace")
                    tail = "\n".join(output.splitlines()[-15:])
                    failed.append(f"migrating sipas_{service} exited with {proc.returncode}:\n{tail}")
                elif then_start and not failed:
                    self.start_service(service)
            time.sleep(0.05)
        if failed:
            raise RuntimeError("\n".join(failed))

    # ---- services --------------------------------------------------------------------------
    def service_env(self, service: str) -> dict[str, str]:
        p = f"SIPAS_{service.upper()}_"
        token = self.identity.mint(f"service:{service}", Role.SERVICE, ttl=30 * 24 * 3600)
        peers = {f"{p}PEERS__{other}": self.url(other) for other in SERVICES if other != service}
        # A local platform is for development: links on ballots and releases name its real ports, the
        # release-signing key lives in its data folder (not in the working directory), and a partner
        # webhook may point at this machine (`sipas demo` runs its receiver here). The environment wins.
        local = {f"{p}PUBLIC_BASE_URL": self.url(service)} if service in ("ballots", "publishing") else {}
        if service == "publishing":
            local |= {f"{p}WEBHOOK_ALLOW_PRIVATE": "true", f"{p}DATA_DIR": str(self.home / "publishing")}
        return local | os.environ | peers | {
            f"{p}DATABASE_URL": self.database_url(service), f"{p}NATS_URL": self.nats_url,
            f"{p}HOST": "127.0.0.1", f"{p}PORT": str(self.ports[service]),
            f"{p}JWT_JWKS_FILE": str(self.identity.jwks_path), f"{p}SERVICE_TOKEN": token,
            f"{p}LOG_FORMAT": self.log_format, "PYTHONUNBUFFERED": "1",
            "SIPAS_SAMPLING_MASTER_KEY_FILE": str(self.home / "keys" / "sampling-master.key"),
        }

    def start_service(self, service: str) -> subprocess.Popen[bytes]:
        logs = self.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{service}.log", "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", f"sipas_{service}"], env=self.service_env(service),
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[service] = proc
        self._pidfile(service).write_text(str(proc.pid))
        return proc

    def start_services(self) -> None:
        """Migrate every database and start each service once its own is at head (what a crashed earlier run
        left running is stopped first)."""
        self.reap_leftovers()
        self.migrate(then_start=True)

    def _pidfile(self, service: str) -> Path:
        run = self.home / "run"
        run.mkdir(parents=True, exist_ok=True)
        return run / f"{service}.pid"

    def reap_leftovers(self) -> None:
        """Stop service processes a crashed earlier run left behind (checked by command line)."""
        for service in SERVICES:
            pidfile = self._pidfile(service)
            if not pidfile.exists():
                continue
            try:
                proc = psutil.Process(int(pidfile.read_text().strip()))
                if f"sipas_{service}" in " ".join(proc.cmdline()):
                    proc.terminate()
                    proc.wait(10)
            except (psutil.Error, ValueError):
                pass
            pidfile.unlink(missing_ok=True)

    def wait_ready(self, timeout: float = 90.0) -> dict[str, dict[str, object]]:
        deadline, status = time.monotonic() + timeout, {}
        pending = set(SERVICES)
        while pending and time.monotonic() < deadline:
            for service in sorted(pending):
                proc = self.procs.get(service)
                if proc is not None and proc.poll() is not None:
                    log = self.home / "logs" / f"{service}.log"
                    tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:]) if log.exists() else ""
                    raise RuntimeError(f"{service} exited with {proc.returncode}; see {log}\n{tail}")
                try:
                    with urllib.request.urlopen(self.url(service) + "/readyz", timeout=2) as resp:  # noqa: S310
                        status[service] = json.loads(resp.read())
                        pending.discard(service)
                except (urllib.error.URLError, OSError, ValueError):
                    pass
            time.sleep(0.2)
        if pending:
            raise TimeoutError(f"not ready after {timeout}s: {', '.join(sorted(pending))}")
        return status

    def stop_service(self, service: str, sig: int = signal.SIGTERM) -> None:
        self.stop_services([service], sig)

    def stop_services(self, services: list[str], sig: int = signal.SIGTERM) -> None:
        """Signal each service, then wait for each (20 s, then it is killed): they shut down side by side."""
        stopping = [(service, proc) for service in services if (proc := self.procs.pop(service, None)) is not None]
        for _, proc in stopping:
            if proc.poll() is None:
                proc.send_signal(sig)
        for service, proc in stopping:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            self._pidfile(service).unlink(missing_ok=True)

    def stop(self) -> None:
        self.stop_services(list(self.procs))
        if self.nats is not None:
            self.nats.stop()
        if self.pg is not None:
            self.pg.stop()

    def start(self) -> dict[str, dict[str, object]]:
        self.start_infrastructure()
        self.start_services()
        return self.wait_ready()
