"""Publishing's pure rules: the release state machine, manifest verification under random edits,
webhook signatures, backoff and SSRF address checks."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import random
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sipas_publishing.domain import manifest as mf
from sipas_publishing.domain import releases as rel
from sipas_publishing.domain import webhooks as wh
from sipas_publishing.domain.errors import FourEyes, ReleaseConflict

NOW = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)


def test_four_eyes_and_order_of_steps() -> None:
    draft = rel.Release("r1", rel.DRAFT, "lan")
    with pytest.raises(ReleaseConflict):
        rel.approve(draft, "minh")
    submitted = rel.submit(draft, "lan")
    with pytest.raises(FourEyes):
        rel.approve(submitted, "lan")
    approved = rel.approve(submitted, "minh")
    scheduled = rel.schedule(approved, NOW + dt.timedelta(hours=1), NOW)
    assert scheduled.status == rel.SCHEDULED
    with pytest.raises(ReleaseConflict, match="embargo"):
        rel.publish(scheduled, NOW)
    published = rel.publish(scheduled, NOW + dt.timedelta(hours=1))
    assert published.status == rel.PUBLISHED and rel.schedule(approved, NOW, NOW) == approved
    assert rel.retract(published).status == rel.RETRACTED
    for step in (lambda r: rel.submit(r, "x"), rel.retract, rel.supersede):
        with pytest.raises(ReleaseConflict):
            step(rel.retract(published))


def _unit(i: int, rng: random.Random) -> dict[str, Any]:
    figure = {"value": f"{rng.randint(5000, 9999) / 100:.2f}", "exact": f"{rng.randint(1, 99)}/{rng.randint(100, 200)}",
              "n": rng.randint(30, 400), "ci": [f"{rng.random() * 50:.2f}", f"{50 + rng.random() * 50:.2f}"],
              "ci_method": "wilson", "weighted": None}
    return {"key": f"A:a{i}", "level": "agency", "id": f"a{i}", "parent": "P:01", "code": f"H01.{i}",
            "name": f"Sở {i}", "province": "01", "ballots": figure["n"],
            "suppressed": None if i % 5 else "insufficient_sample", "overall": figure,
            "factors": {f"F{k}": dict(figure, n=figure["n"] - k) for k in range(1, 6)},
            "items": {f"F1.{k}": dict(figure, n=figure["n"] - k) for k in range(1, 5)},
            "rank": {"rank": i, "best": max(1, i - 1), "worst": i + 1, "of": 20}}


def _signed(key: Ed25519PrivateKey, rng: random.Random) -> dict[str, Any]:
    document = {"campaign_id": "c26", "year": 2026, "scheme": {"id": "share-satisfied", "version": 1},
                "instrument": {"id": "sipas-2017", "version": 1}, "units": [_unit(i, rng) for i in range(1, 21)]}
    snapshot = {"snapshot_id": "s1", "positions": {"ballots": 120}, "chain_heads": {"ballots": "ab" * 32},
                "figures_digest": mf.figures_digest(document), "taken_at": "2026-12-01T00:00:00.000000Z"}
    manifest = mf.build({"release_id": "r1", "approved_by": "minh"}, snapshot,
                        [{"draw_id": "d1", "seed_commitment": "cd" * 32}], document)
    body = mf.manifest_bytes(manifest)
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"manifest": manifest, "sha256": hashlib.sha256(body).hexdigest(), "signature": key.sign(body).hex(),
            "key_id": mf.key_id(raw), "public_key": raw.hex()}


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaves(v, (*path, i))]
    return [path]


def test_a_genuine_release_verifies_and_every_single_edit_fails() -> None:
    rng = random.Random(2026)
    key = Ed25519PrivateKey.generate()
    genuine = _signed(key, rng)
    raw = bytes.fromhex(genuine["public_key"])
    assert mf.verify(genuine, raw).ok and mf.verify(genuine).figures == 20 * 10
    leaves = [p for p in _leaves(genuine["manifest"]["figures"]) if p]
    for path in rng.sample(leaves, 300):
        edited = copy.deepcopy(genuine)
        holder = edited["manifest"]["figures"]
        for step in path[:-1]:
            holder = holder[step]
        old = holder[path[-1]]
        holder[path[-1]] = (old + 1) if isinstance(old, int) and not isinstance(old, bool) else (
            "không đủ mẫu" if old is None else str(old) + "1")
        verdict = mf.verify(edited, raw)
        assert not verdict.ok and any("SHA-256" in p for p in verdict.problems), path
    # Re-hashing an edit does not help without the private key.
    edited = copy.deepcopy(genuine)
    edited["manifest"]["figures"]["units"][3]["overall"]["n"] += 1
    edited["sha256"] = hashlib.sha256(mf.manifest_bytes(edited["manifest"])).hexdigest()
    assert any("signature" in p for p in mf.verify(edited, raw).problems)
    other = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert not mf.verify(genuine, other).ok
    assert not mf.verify({"nothing": 1}).ok


def test_webhook_signature_window_and_backoff() -> None:
    body = b'{"id":"e1"}'
    header = wh.signature_header("s3cret", 1_700_000_000, body)
    assert wh.verify("s3cret", header, body, 1_700_000_100)
    assert not wh.verify("s3cret", header, body + b" ", 1_700_000_100)
    assert not wh.verify("s3cret", header, body, 1_700_000_000 + 301)  # outside the replay window
    assert not wh.verify("s3cret", "t=abc,v1=00", body, 1_700_000_000)
    assert [wh.backoff(a, 5, 60) for a in range(1, 7)] == [5, 10, 20, 40, 60, 60]


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.8", "172.16.4.4", "192.168.0.1", "169.254.169.254",
                                     "::1", "fe80::1", "::ffff:10.0.0.1", "0.0.0.0", "224.0.0.1"])
def test_private_targets_are_refused(address: str) -> None:
    assert wh.forbidden_address(["93.184.216.34", address]) is not None


def test_public_targets_pass() -> None:
    assert wh.forbidden_address(["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]) is None
