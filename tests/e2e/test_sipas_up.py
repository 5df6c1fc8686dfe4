"""`sipas up` (what `make run` runs) brings up five ready services and stops them all on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sipas_cli.platform import SERVICES
from sipas_cli.stack import free_port_block

pytestmark = pytest.mark.e2e


def test_sipas_up_starts_everything_and_stops_cleanly():
    from conftest import traversable_tmp

    tmp_path = traversable_tmp("sipas-up-")
    base = free_port_block(8)
    sipas = Path(sys.executable).parent / "sipas"
    proc = subprocess.Popen([str(sipas), "up", "--port-base", str(base)], env=os.environ | {"SIPAS_HOME": str(tmp_path)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        ready = {}
        deadline = time.monotonic() + 180
        while len(ready) < len(SERVICES) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            for i, service in enumerate(SERVICES, start=3):
                try:
                    r = httpx.get(f"http://127.0.0.1:{base + i}/readyz", timeout=1)
                    if r.status_code == 200:
                        ready[service] = r.json()
                except httpx.HTTPError:
                    pass
            time.sleep(0.3)
        assert sorted(ready) == sorted(SERVICES)
        assert all(r["checks"] == {"database": "ok", "migrations": "ok", "nats": "ok"} for r in ready.values())
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out
    assert "SIPAS is running" in out and "Stopped." in out
    for i in range(8):
        assert not _busy(base + i), f"port {base + i} still in use after stop"


def _busy(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
