"""Envelope encryption: a data key per campaign, wrapped by a master key from a pluggable source.

``LocalKeyFile`` keeps the master key in a file (0600), the default for one machine; a KMS or HSM
implements the same two methods. Contacts are sealed with AES-256-GCM under the campaign's data key,
with the campaign and dossier ids as associated data, so a ciphertext moved to another row or
campaign fails to open.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE = 12
_CONTACT_JSON = json.JSONEncoder(ensure_ascii=False).encode  # = json.dumps(..., ensure_ascii=False), reused


class KeySource(Protocol):
    key_ref: str

    def wrap(self, secret: bytes, context: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes: ...


class LocalKeyFile:
    def __init__(self, path: Path) -> None:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
        key = path.read_bytes()
        if len(key) != 32:
            raise ValueError(f"{path} must hold exactly 32 bytes")
        self._aead = AESGCM(key)
        self.key_ref = f"file:{path.name}"

    def wrap(self, secret: bytes, context: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE)
        return nonce + self._aead.encrypt(nonce, secret, context)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        return self._aead.decrypt(wrapped[:NONCE], wrapped[NONCE:], context)


@dataclass(frozen=True)
class Contact:
    name: str
    phone: str | None
    address: str | None


class Sealer:
    """Seals and opens one campaign's contacts."""

    def __init__(self, data_key: bytes, campaign_id: str) -> None:
        self._aead, self._campaign = AESGCM(data_key), campaign_id.encode()

    def seal(self, dossier_id: str, contact: Contact) -> bytes:
        plain = _CONTACT_JSON([contact.name, contact.phone, contact.address]).encode()
        return self.seal_plain(dossier_id, plain, secrets.token_bytes(NONCE))

    def seal_plain(self, dossier_id: str, plain: bytes, nonce: bytes) -> bytes:
        """Seal a contact's plaintext, the UTF-8 of ``json.dumps([name, phone, address], ensure_ascii=False)``,
        under ``nonce``: NONCE fresh random bytes."""
        return nonce + self._aead.encrypt(nonce, plain, self._campaign + b"|" + dossier_id.encode())

    def open(self, dossier_id: str, sealed: bytes) -> Contact:
        plain = self._aead.decrypt(sealed[:NONCE], sealed[NONCE:], self._campaign + b"|" + dossier_id.encode())
        name, phone, address = json.loads(plain)
        return Contact(name, phone, address)
