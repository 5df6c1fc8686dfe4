"""Personal data stays sealed: after a sampling round with every process running, no respondent's
name, phone number or address appears in any event, log line, metric, or database — anywhere."""

from __future__ import annotations

import subprocess

import httpx
import pytest
from conftest import wait_for

from sipas_cli.platform import SERVICES
from sipas_cli.stack.postgres import _bin, _client_env

pytestmark = pytest.mark.e2e
SEED = "c0ffee" * 8
# Distinctive values that cannot occur by chance anywhere else.
NAME, PHONE, STREET = "Quách Thị Zyxw", "0987651234", "ngõ Zyxwvu"


def test_no_personal_data_leaves_the_sealed_column(platform, admin, run_round):
    sampling = platform.url("sampling")
    rows = [f"PII-W1,Chứng thực,chứng thực,D-{i:04d},2026-02-0{1 + i % 9},cá nhân,{NAME} {i},"
            f"{PHONE[:-2]}{i % 100:02d},Số {i} {STREET}" for i in range(60)]
    bad = f"PII-W1,Chứng thực,chứng thực,D-BAD,2026-02-01,cá nhân,{NAME} lỗi,12{PHONE},{STREET}"
    round_ = run_round(code="PII-W1", frame_rows=[*rows, bad], seed=SEED)
    assert round_["frame"]["rejected_rows"] == 1
    draw, op = round_, round_["op"]
    units = httpx.get(sampling + f"/v1/draws/{draw['draw_id']}/units", headers=op).json()
    first = next(u for u in units if u["role"] == "selected")
    seen = httpx.get(sampling + f"/v1/units/{first['unit_id']}/contact", params={"purpose": "phát phiếu"},
                     headers=op).json()
    assert seen["name"].startswith(NAME)  # the one place it may appear: an authorised, logged read
    auditor = {"Authorization": f"Bearer {platform.identity.mint('auditor@test', 'auditor')}"}

    def audited_read():
        entries = httpx.get(sampling + "/v1/audit", headers=auditor, params={"limit": 5000}).json()["entries"]
        return [e["entry"] for e in entries if e["entry"]["kind"] == "personal-data-read"]
    reads = wait_for(audited_read, timeout=30)  # sealed into the audit chain with who, why and from where
    assert reads[-1]["actor"] == "op01" and reads[-1]["purpose"] == "phát phiếu" and reads[-1]["status"] == 200
    assert reads[-1]["path"] == f"/v1/units/{first['unit_id']}/contact" and reads[-1]["client"] == "127.0.0.1"
    assert httpx.get(sampling + "/v1/audit/verify", headers=auditor).json()["ok"] is True
    httpx.post(sampling + f"/v1/units/{first['unit_id']}/withdraw", json={"reason": "withdrawal"},
               headers=op).raise_for_status()
    # Let every consumer catch up with the round's events before looking.
    wait_for(lambda: all(p["position"] >= 1 for s in SERVICES if s != "registry"
                         for p in httpx.get(platform.url(s) + "/v1/ops/projections", headers=admin).json()))

    needles = [NAME, NAME.split()[-1], PHONE[:-2], STREET]
    found = []
    for service in SERVICES:
        dump = subprocess.run([_bin("pg_dump"), "--data-only", "-h", "127.0.0.1", "-p", str(platform.ports["postgres"]),
                               "-U", "postgres", f"sipas_{service}"], capture_output=True, text=True,
                              env=_client_env(), check=True).stdout
        assert "COPY public.event_store" in dump
        found += [f"database sipas_{service}: {n}" for n in needles if n in dump]
        log = (platform.home / "logs" / f"{service}.log").read_text(encoding="utf-8", errors="replace")
        found += [f"{service}.log: {n}" for n in needles if n in log]
        metrics = httpx.get(platform.url(service) + "/metrics").text
        found += [f"{service} /metrics: {n}" for n in needles if n in metrics]
    streams = subprocess.run(["find", str(platform.home / "nats"), "-type", "f"], capture_output=True, text=True,
                             check=True).stdout.split()
    for path in streams:
        with open(path, "rb") as f:
            blob = f.read()
        found += [f"NATS file {path}: {n}" for n in needles if n.encode() in blob]
    assert found == []
