"""Offline check of a downloaded release: nothing here talks to a server."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sipas_publishing.domain.manifest import Verdict, verify


def public_key_bytes(value: str) -> bytes:
    """Raw 32 bytes from hex or from a PEM file (SubjectPublicKeyInfo)."""
    path = Path(value)
    if path.is_file():
        key = serialization.load_pem_public_key(path.read_bytes())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"{path} is not an Ed25519 public key")
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return bytes.fromhex(value)


def verify_file(path: Path, public_key: str | None = None) -> Verdict:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Verdict(problems=[f"{path} is not JSON: {exc}"])
    try:
        raw = public_key_bytes(public_key) if public_key else None
    except ValueError as exc:
        return Verdict(problems=[f"unusable public key: {exc}"])
    return verify(document, raw)
