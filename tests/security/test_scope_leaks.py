"""Small scope leaks, closed: what a provincial caller learns of another province through an error, a
reference listing or a partner feature.

- registry: a parent of another province (when creating, moving, merging into or splitting a unit)
  answers exactly as an unknown id does: not its name, level, province or dates;
- ``/v1/reference/agency-links`` (the kit's reference router, in sampling, ballots, scoring and
  publishing) lists to a provincial caller only the links with one of their units, or a ministry or
  province, at an end;
- publishing's webhook subscriptions are managed by the ministry, by partners (their own) and by API
  keys with the ``webhooks:manage`` scope, not by every signed-in role."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from conftest import apply_events

from sipas_events.catalogue import registry as reg

pytestmark = pytest.mark.asyncio
HOME, AWAY = "79", "01"


def ok(response: Any, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def shown(response: Any, secret_id: str) -> dict[str, Any]:
    """The problem a caller sees, with the id it sent masked and the per-request correlation id left out."""
    doc = {k: v for k, v in response.json().items() if k != "correlation_id"}
    return masked(doc, secret_id)


def masked(value: Any, secret_id: str) -> Any:
    if isinstance(value, dict):
        return {k: masked(v, secret_id) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v, secret_id) for v in value]
    return value.replace(secret_id, "<id>") if isinstance(value, str) else value


async def test_a_parent_in_another_province_is_answered_as_an_unknown_id(open_api):
    api = await open_api("registry")
    admin = api.auth("ministry-admin")

    async def unit(province: str, name: str, level: str, parent: str | None, code: str, since: str) -> str:
        return ok(await api.client.post("/v1/agencies", headers=admin, json={
            "code": code, "name": name, "level": level, "province": province, "parent_id": parent,
            "valid_from": since}))["agency_id"]

    tops = {p: await unit(p, f"Tỉnh {p}", "province", None, p, "2008-08-01") for p in (HOME, AWAY)}
    hidden = await unit(AWAY, "Quận Bí Mật", "district", tops[AWAY], f"{AWAY}-QBM", "2008-08-01")
    own = await unit(HOME, "Phường Nhà", "commune", tops[HOME], f"{HOME}-PN", "2020-01-01")
    operator = api.auth("province-operator", HOME)
    unknown = str(uuid.uuid4())

    def new_commune(parent: str) -> dict[str, Any]:
        return {"code": f"{HOME}-X{parent[:4]}", "name": "Phường Mới", "level": "commune", "province": HOME,
                "parent_id": parent, "valid_from": "2020-01-01"}

    move = {"effective_date": "2021-01-01", "legal_basis": "Quyết định thử"}
    probes = {
        "register": lambda parent: api.client.post("/v1/agencies", headers=operator, json=new_commune(parent)),
        "reparent": lambda parent: api.client.post(f"/v1/agencies/{own}/reparent", headers=operator,
                                                   json=move | {"parent_id": parent}),
        "split": lambda parent: api.client.post("/v1/reorganisations/split", headers=operator, json=move | {
            "predecessor_id": own, "successors": [new_commune(parent) | {"valid_from": "2021-01-01"},
                                                  new_commune(tops[HOME]) | {"code": f"{HOME}-Y",
                                                                             "valid_from": "2021-01-01"}]}),
    }
    for name, probe in probes.items():
        leaked, baseline = await probe(hidden), await probe(unknown)
        assert leaked.status_code == baseline.status_code == 422, (name, leaked.text)
        assert shown(leaked, hidden) == shown(baseline, unknown), name
        assert "is not in the registry" in baseline.json()["detail"], (name, baseline.text)
        said = json.dumps(shown(leaked, hidden), ensure_ascii=False)
        assert "Bí Mật" not in said and "district" not in said and f"province {AWAY}" not in said, name
    # The ministry still hears why (it may see every unit), and nothing was registered or moved.
    told = await api.client.post("/v1/agencies", headers=admin, json=new_commune(hidden))
    assert told.status_code == 422 and "Quận Bí Mật" in told.text, told.text
    detail = ok(await api.client.get(f"/v1/agencies/{own}", headers=operator), 200)
    assert detail["parent_id"] == tops[HOME]


async def test_agency_links_are_scoped_to_the_callers_province(open_api):
    api = await open_api("ballots")
    from sipas_ballots.adapters.tables import reference
    from sipas_kit.reference import reference_projection

    def registered(agency_id: str, province: str, level: str = "commune", valid_to: str | None = None) -> Any:
        return reg.AgencyRegistered(agency_id=agency_id, code=agency_id, name=f"Đơn vị {agency_id}", level=level,
                                    province=province, parent_id=None if level == "province" else f"p{province}",
                                    valid_from="2008-08-01", valid_to=valid_to)

    basis = "Nghị quyết thử"
    events = [
        *[registered(f"p{p}", p, "province") for p in (HOME, AWAY, "02")],
        *[registered(f"{p}-old{i}", p) for p in (HOME, AWAY) for i in (1, 2)],
        *[registered(f"{p}-new", p) for p in (HOME, AWAY)],
        *[reg.AgencyMerged(predecessor_ids=[f"{p}-old1", f"{p}-old2"], successor_id=f"{p}-new",
                           effective_date="2025-07-01", legal_basis=basis, province=p) for p in (HOME, AWAY)],
        reg.AgencyMerged(predecessor_ids=["p02"], successor_id=f"p{AWAY}", effective_date="2025-07-01",
                         legal_basis=basis),  # provinces merging: national knowledge
    ]
    await apply_events(api.database_url, reference_projection(reference), events, "registry")

    async def links(headers: dict[str, str]) -> set[tuple[str, str]]:
        found = ok(await api.client.get("/v1/reference/agency-links", headers=headers), 200)
        return {(x["predecessor_id"], x["successor_id"]) for x in found}  # type: ignore[union-attr]

    every = {(f"{p}-old{i}", f"{p}-new") for p in (HOME, AWAY) for i in (1, 2)} | {("p02", f"p{AWAY}")}
    assert await links(api.auth("ministry-admin")) == every
    assert await links(api.auth("auditor")) == every
    for role in ("province-operator", "clerk", "enumerator"):
        mine = await links(api.auth(role, HOME))
        assert mine == {(f"{HOME}-old1", f"{HOME}-new"), (f"{HOME}-old2", f"{HOME}-new"), ("p02", f"p{AWAY}")}, role
        assert not any(AWAY + "-" in a or AWAY + "-" in b for a, b in mine), role


async def test_webhook_subscriptions_are_managed_by_the_ministry_partners_and_scoped_keys(open_api, tmp_path):
    api = await open_api("publishing", data_dir=tmp_path / "publishing", webhook_allow_private=True)
    hook = {"url": "http://127.0.0.1:9/hook"}
    for role, province in (("province-operator", HOME), ("clerk", HOME), ("enumerator", HOME), ("auditor", None),
                           ("service", None)):
        refused = await api.client.post("/v1/webhooks", json=hook, headers=api.auth(role, province))
        assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json", role
        assert "ministry-admin, partner" in refused.json()["detail"], refused.text
    mine = ok(await api.client.post("/v1/webhooks", json=hook, headers=api.auth("ministry-admin")))
    partner = api.auth("partner", subject="partner@vnpt")
    theirs = ok(await api.client.post("/v1/webhooks", json=hook, headers=partner))
    assert theirs["owner"] == "partner@vnpt"
    # A partner manages its own subscriptions only; the ministry every one.
    other = await api.client.get(f"/v1/webhooks/{mine['subscription_id']}/deliveries", headers=partner)
    assert other.status_code == 404
    ok(await api.client.get(f"/v1/webhooks/{theirs['subscription_id']}/deliveries", headers=partner), 200)
    ok(await api.client.get(f"/v1/webhooks/{theirs['subscription_id']}/deliveries", headers=api.auth("ministry-admin")),
       200)
    operator = await api.client.get(f"/v1/webhooks/{theirs['subscription_id']}/deliveries",
                                    headers=api.auth("province-operator", HOME))
    assert operator.status_code == 403
    # API keys: the scope decides.
    admin = api.auth("ministry-admin")
    scoped = ok(await api.client.post("/v1/api-keys", headers=admin,
                                      json={"name": "hooks", "scopes": ["webhooks:manage"]}))["api_key"]
    unscoped = ok(await api.client.post("/v1/api-keys", headers=admin,
                                        json={"name": "reader", "scopes": ["releases:read"]}))["api_key"]
    ok(await api.client.post("/v1/webhooks", json=hook, headers={"X-Api-Key": scoped}))
    refused = await api.client.post("/v1/webhooks", json=hook, headers={"X-Api-Key": unscoped})
    assert refused.status_code == 403 and "webhooks:manage" in refused.json()["detail"]
