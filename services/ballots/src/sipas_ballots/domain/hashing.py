"""Keyed hashing shared by the derived ballot codes and the back-check draw."""

from __future__ import annotations

import hashlib
import hmac

MIN_KEY_BYTES = 16


def encode_labels(labels: tuple[str, ...]) -> bytes:
    """Each label as its UTF-8 bytes preceded by their length (4 bytes, big-endian): no two label lists
    give the same bytes, so ``("ab", "c")`` and ``("a", "bc")`` cannot collide."""
    parts = []
    for text in labels:
        data = text.encode("utf-8")
        parts.append(len(data).to_bytes(4, "big") + data)
    return b"".join(parts)


def keyed_hash(key: bytes, domain: bytes, *labels: str) -> bytes:
    """HMAC-SHA256(key, domain ‖ 0x00 ‖ encoded labels): 32 bytes, a pseudo-random function of the labels."""
    return hmac.new(key, domain + b"\x00" + encode_labels(labels), hashlib.sha256).digest()
