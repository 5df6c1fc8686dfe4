"""Webhook rules with no I/O: signatures, retry delays, and which targets are allowed.

A delivery is signed as ``HMAC-SHA256(secret, f"{timestamp}.{body}")`` in hex, sent in
``Sipas-Signature: t=<timestamp>,v1=<hex>``; the receiver recomputes it and refuses timestamps
outside its replay window. ``Sipas-Event-Id`` (the CloudEvent id) is stable across retries so a
receiver can drop duplicates.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable

SIGNATURE_HEADER, EVENT_ID_HEADER, TIMESTAMP_HEADER = "Sipas-Signature", "Sipas-Event-Id", "Sipas-Timestamp"
PARTNER_EVENTS = ("ReleasePublished", "ReleaseRetracted")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, now: int, window: int = 300) -> bool:
    """What a receiver does: parse ``t=…,v1=…``, check the window, compare in constant time."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs(now - timestamp) > window:
        return False
    return hmac.compare_digest(parts.get("v1", ""), sign(secret, timestamp, body))


def backoff(attempts: int, base: float, cap: float) -> float:
    """Seconds before the next try after ``attempts`` failed ones: base, 2·base, 4·base, … up to cap."""
    return float(min(cap, base * (2 ** max(0, attempts - 1))))


def forbidden_address(addresses: Iterable[str]) -> str | None:
    """The first address a webhook may not reach (private, loopback, link-local, …), or None."""
    for text in addresses:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
                or ip.is_unspecified):
            return str(ip)
    return None
