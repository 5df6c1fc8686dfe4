"""One platform for every end-to-end test: all five services as processes over the embedded stack,
with the province maps and built-in instruments loaded through the registry's API (as `sipas up` does)."""

from __future__ import annotations

import pytest

from sipas_cli.platform import SERVICES, Platform
from sipas_cli.registry_client import MAP34_FROM, MAP63_FROM, RegistryClient, province_id
from sipas_cli.stack import free_port_block


@pytest.fixture(scope="session")
def platform():
    import os

    from conftest import traversable_tmp

    # A rebuild of the scoring tallies reads its stream in a process of its own, as a long stream's does in
    # production (50,000 messages or more): the deployed shape of that path runs here on a short one.
    os.environ["SIPAS_SCORING_REBUILD_PROCESS_MIN"] = "0"
    names = ("postgres", "nats", "nats_monitor", *SERVICES)
    base = free_port_block(len(names))
    p = Platform(traversable_tmp("sipas-e2e-"), ports={n: base + i for i, n in enumerate(names)},
                 log_format="console")
    try:
        p.start()
        token = p.identity.mint("seed@e2e", "ministry-admin", ttl=3600)
        with RegistryClient(p.url("registry"), token) as client:
            p.seeded = {"builtins": client.load_builtins(), "maps": client.load_maps()}  # type: ignore[attr-defined]
        yield p
    finally:
        p.stop()
        os.environ.pop("SIPAS_SCORING_REBUILD_PROCESS_MIN", None)


@pytest.fixture(scope="session")
def admin(platform):
    return {"Authorization": f"Bearer {platform.identity.mint('admin@test', 'ministry-admin')}"}


@pytest.fixture(scope="session")
def hanoi():
    """Hà Nội continued unchanged through 2025: one unit, 2008 onwards."""
    return province_id("01", MAP63_FROM)


def province_2025(code: str) -> str:
    return province_id(code, MAP34_FROM)


def sampling_round(platform, admin, *, code: str, frame_rows: list[str], seed: str,
                   collection: tuple[str, str] = ("2026-06-01", "2026-09-30")) -> dict:
    """A commune of Hà Nội, a campaign over it, its frame uploaded, a plan approved and a draw revealed,
    all through the public APIs. Returns the ids and the province operator's headers."""
    import hashlib

    import httpx
    from conftest import wait_for

    registry, sampling = platform.url("registry"), platform.url("sampling")
    ward = httpx.post(registry + "/v1/agencies", headers=admin, json={
        "code": code, "name": f"Phường {code}", "level": "commune", "province": "01",
        "parent_id": province_id("01", MAP63_FROM), "valid_from": MAP34_FROM}).json()["agency_id"]
    campaign = httpx.post(registry + "/v1/campaigns", headers=admin, json={
        "name": f"Vòng thử {code}", "year": 2026, "scope": "province", "province": "01",
        "collection_window": {"start": collection[0], "end": collection[1]},
        "frame_window": {"start": "2025-10-01", "end": "2026-05-31"}, "target_unit_ids": [ward],
        "instrument": {"id": "sipas-2017", "version": 1}, "scheme": {"id": "share-satisfied", "version": 1},
        "retention_until": max("2027-12-31", collection[1])})
    assert campaign.status_code == 201, campaign.text
    cid = campaign.json()["campaign_id"]
    op = {"Authorization": f"Bearer {platform.identity.mint('op01', 'province-operator', province='01')}"}
    for service in ("sampling", "ballots", "scoring"):  # every service that acts on it has learned the campaign
        wait_for(lambda service=service: any(c["campaign_id"] == cid for c in httpx.get(
            platform.url(service) + "/v1/reference/campaigns", headers=op).json()), timeout=60)
    header = "agency_code,procedure,service_field,dossier_id,completed_on,respondent_type,name,phone,address"
    frame = httpx.post(sampling + f"/v1/campaigns/{cid}/frames", params={"mode": "accept_valid"},
                       headers=op | {"Content-Type": "text/csv"}, content="\n".join([header, *frame_rows]).encode())
    assert frame.status_code == 201, frame.text
    plan = httpx.post(sampling + f"/v1/campaigns/{cid}/plans", json={"frame_id": frame.json()["frame_id"]},
                      headers=op).json()
    httpx.post(sampling + f"/v1/plans/{plan['plan_id']}/approve", headers=admin).raise_for_status()
    draw = httpx.post(sampling + f"/v1/plans/{plan['plan_id']}/draws", headers=op,
                      json={"seed_commitment": hashlib.sha256(seed.encode()).hexdigest()}).json()
    httpx.post(sampling + f"/v1/draws/{draw['draw_id']}/reveal", json={"seed": seed}, headers=op).raise_for_status()
    return {"campaign_id": cid, "draw_id": draw["draw_id"], "frame": frame.json(), "op": op}


@pytest.fixture(scope="session")
def run_round(platform, admin):
    """``run_round(code=..., frame_rows=[...], seed=...)``: see ``sampling_round``."""
    return lambda **kw: sampling_round(platform, admin, **kw)
