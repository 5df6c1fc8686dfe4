"""The release manifest: what was published, canonically serialised, hashed and signed.

A release file is ``{"manifest": …, "sha256": …, "signature": …, "key_id": …, "public_key": …}``.
``sha256`` is the SHA-256 of the manifest's canonical JSON (``sipas_events.canonical``) and
``signature`` the Ed25519 signature of those same bytes. The manifest carries scoring's figures
document verbatim, so its SHA-256 must also equal the snapshot's ``figures_digest``: an edited figure
breaks both. Verification needs nothing but the file and (to know who signed) the public key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sipas_events import canonical

FORMAT = "sipas-release/1"


def figures_digest(document: dict[str, Any]) -> str:
    """The digest scoring records for a figures document (canonical JSON, SHA-256)."""
    return hashlib.sha256(canonical.dumpb(document)).hexdigest()


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return canonical.dumpb(manifest)


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def build(release: dict[str, Any], snapshot: dict[str, Any], commitments: list[dict[str, Any]],
          document: dict[str, Any], comparison: dict[str, Any] | None = None,
          audit_heads: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The manifest; ``comparison`` (year on year, restated on today's provinces) only when the
    release names an earlier campaign, and ``audit_heads`` (each service's audit-chain position and
    head hash at drafting) when the release recorded them (releases drafted before they were, did not),
    so an older release reads as it always did."""
    manifest = {"format": FORMAT, "release": release, "snapshot": snapshot, "seed_commitments": commitments,
                "figures": document}
    return manifest | ({"comparison": comparison} if comparison is not None else {}) | (
        {"audit_heads": audit_heads} if audit_heads is not None else {})


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    figures: int = 0
    key_id: str | None = None
    audit_heads: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each service's audit-chain head the release recorded (signed with the rest: trust it only if ok)."""

    @property
    def ok(self) -> bool:
        return not self.problems


def count_figures(document: dict[str, Any]) -> int:
    units = document.get("units", [])
    return sum(1 + len(u.get("factors") or {}) + len(u.get("items") or {}) for u in units)


def verify(release_file: Any, public_key: bytes | None = None) -> Verdict:
    """Check a downloaded release: its hash, its signature (by ``public_key`` if given, raw 32 bytes,
    else the key the file names — which proves integrity, not origin) and the figures' digest."""
    verdict = Verdict()
    if not isinstance(release_file, dict) or not isinstance(release_file.get("manifest"), dict):
        verdict.problems.append("not a release file: no manifest object")
        return verdict
    manifest = release_file["manifest"]
    if manifest.get("format") != FORMAT:
        verdict.problems.append(f"unknown manifest format {manifest.get('format')!r}")
    body = manifest_bytes(manifest)
    if hashlib.sha256(body).hexdigest() != release_file.get("sha256"):
        verdict.problems.append("the manifest's SHA-256 does not match the file's sha256: the manifest was changed")
    try:
        raw = public_key if public_key is not None else bytes.fromhex(str(release_file.get("public_key", "")))
        verdict.key_id = key_id(raw)
        if public_key is not None and release_file.get("key_id") not in (None, verdict.key_id):
            verdict.problems.append(f"signed with key {release_file.get('key_id')}, not the given key "
                                    f"{verdict.key_id}")
        Ed25519PublicKey.from_public_bytes(raw).verify(bytes.fromhex(str(release_file.get("signature", ""))), body)
    except (InvalidSignature, ValueError):
        verdict.problems.append("the Ed25519 signature does not verify over the manifest")
    figures = manifest.get("figures")
    snapshot = manifest.get("snapshot") or {}
    if not isinstance(figures, dict) or figures_digest(figures) != snapshot.get("figures_digest"):
        verdict.problems.append("the figures do not hash to the snapshot's figures_digest")
    else:
        verdict.figures = count_figures(figures)
    heads = manifest.get("audit_heads", {})
    if not isinstance(heads, dict) or not all(
            isinstance(h, dict) and isinstance(h.get("position"), int) and isinstance(h.get("head"), str)
            for h in heads.values()):
        verdict.problems.append("audit_heads is not a map of service to {position, head}")
    else:
        verdict.audit_heads = heads
    return verdict
