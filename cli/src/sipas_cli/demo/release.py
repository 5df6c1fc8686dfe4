"""Steps 5 and 6: scoring freezes the figures; publishing drafts, approves (four eyes) and publishes them;
a partner hears of it by webhook and checks the signed release file it downloads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sipas_cli.demo.client import APPROVER, DRAFTER, ORGANISER, Api, DemoError, wait_until
from sipas_cli.demo.model import Round
from sipas_cli.demo.quality import head
from sipas_cli.demo.receiver import Receiver


def freeze(api: Api, rnd: Round) -> None:
    """Wait until the figures reflect every ballot and weight event, then take the snapshot."""
    wanted = {"ballots": head(api, "ballots"), "sampling": head(api, "sampling")}
    path = f"/v1/campaigns/{rnd.campaign_id}"

    def current() -> dict[str, Any] | None:
        doc = api.get("scoring", f"{path}/scores", ORGANISER, params={"level": "national"})
        positions = doc.get("positions") or {}
        return doc if all(positions.get(p, 0) >= n for p, n in wanted.items()) else None

    wait_until(current, "scoring reflecting every ballot", timeout=300)
    rnd.snapshot = api.post("scoring", f"{path}/snapshots", ORGANISER)


class Partner:
    """A partner system (the national public-service portal): an API key and a webhook subscription."""

    def __init__(self, api: Api, rnd: Round, receiver: Receiver) -> None:
        self.api = api
        made = api.post("publishing", "/v1/api-keys", ORGANISER, {
            "name": f"Cổng Dịch vụ công quốc gia — thử nghiệm {rnd.tag}",
            "scopes": ["releases:read", "webhooks:manage"], "rate_per_minute": 600})
        self.key = {"X-Api-Key": made["api_key"]}
        self.key_id = made["key_id"]
        r = api.call("POST", "publishing", "/v1/webhooks", None, ok=(201, 422), headers=self.key,
                     json={"url": receiver.url, "event_types": ["ReleasePublished"]})
        self.subscription: dict[str, Any] | None = r.json() if r.status_code == 201 else None
        if self.subscription is None:
            rnd.notes.append("publishing refused the local webhook receiver (private targets are refused unless "
                             "SIPAS_PUBLISHING_WEBHOOK_ALLOW_PRIVATE=true, as `sipas up` sets): no webhook shown")
        else:
            receiver.secret = self.subscription["secret"]

    def get(self, path: str, **params: Any) -> Any:
        return self.api.get("publishing", path, None, headers=self.key, params=params)


def publish(api: Api, rnd: Round, partner: Partner) -> None:
    snapshot_id = rnd.snapshot["snapshot_id"]
    title = f"Chỉ số SIPAS {rnd.year} — vòng trình diễn {rnd.tag} (dữ liệu mô phỏng)"

    def drafted() -> dict[str, Any] | None:  # publishing learns of the snapshot from scoring's events
        r = api.call("POST", "publishing", "/v1/releases", DRAFTER, ok=(201, 404, 409, 503),
                     json={"snapshot_id": snapshot_id, "title": title},
                     headers={"Idempotency-Key": f"demo-release-{snapshot_id}"})
        return r.json() if r.status_code == 201 else None

    draft = wait_until(drafted, "publishing learning of the snapshot")
    release_id = draft["release_id"]
    base = f"/v1/releases/{release_id}"
    api.post("publishing", f"{base}/submit", DRAFTER)
    refused = api.call("POST", "publishing", f"{base}/approve", DRAFTER, ok=(403,))
    api.post("publishing", f"{base}/approve", APPROVER)
    published = api.post("publishing", f"{base}/publish", APPROVER, {})
    if published["status"] != "published":
        raise DemoError(f"release {release_id} is {published['status']} after publishing")
    rnd.release = published | {"four_eyes_refusal": refused.json().get("title")}
    rnd.report_url = f"{api.urls['publishing']}/report/{release_id}"


def check_as_partner(api: Api, rnd: Round, partner: Partner, receiver: Receiver, home: Path) -> None:
    release_id = rnd.release["release_id"]
    if partner.subscription is not None:
        got = wait_until(lambda: receiver.find(release_id), "the partner's webhook receiving ReleasePublished",
                         timeout=120)
        rnd.webhook = {"event_id": got.event_id, "type": got.event_type, "signature_valid": got.signature_valid,
                       "release_id": got.body["data"]["release_id"],
                       "manifest_sha256": got.body["data"]["manifest_sha256"],
                       "subscription_id": partner.subscription["subscription_id"],
                       "body": got.raw, "signature": got.signature, "secret": partner.subscription["secret"]}
    from sipas_cli.verify_release import verify_file

    manifest = partner.get(f"/v1/releases/{release_id}/manifest")
    folder = home / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"release-{release_id}.json"
    path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    pinned = partner.get("/v1/keys")["keys"][0]["public_key"]
    verdict = verify_file(path, pinned)
    rnd.manifest_path, rnd.manifest_ok, rnd.public_key = str(path), verdict.ok, pinned
    if not verdict.ok:
        raise DemoError(f"the published release does not verify: {'; '.join(verdict.problems)}")
    figures = partner.get(f"/v1/releases/{release_id}/scores")["units"]
    rnd.national = next((u for u in figures if u["level"] == "national"), {})
    rnd.provinces_published = sorted((u for u in figures if u["level"] == "province"),
                                     key=lambda u: (u.get("rank") or {}).get("rank") or 999)
