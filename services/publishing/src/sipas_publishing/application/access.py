"""Partner access: API keys kept only as SHA-256 hashes, with scopes and a per-key rate limit.

A key reads ``sipas_<key_id>_<secret>``; only ``key_id`` and the secret's hash are stored, and the
key is shown once, when created. The rate limit is a token bucket per key kept in its row (refilled
at ``rate_per_minute``/60 per second, at most ``rate_per_minute`` tokens), updated under a row lock,
so every replica of the service counts against the same bucket.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_kit.problems import Problem
from sipas_publishing.adapters.tables import api_keys

SCOPES = ("releases:read", "feed:read", "webhooks:manage")
PREFIX = "sipas_"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_key(conn: AsyncConnection, name: str, scopes: Sequence[str], rate_per_minute: int,
                     created_by: str) -> dict[str, Any]:
    key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    row = {"key_id": key_id, "name": name, "secret_sha256": _hash(secret), "scopes": sorted(set(scopes)),
           "rate_per_minute": rate_per_minute, "tokens": {"tokens": float(rate_per_minute), "at": time.time()},
           "created_by": created_by, "created_at": dt.datetime.now(dt.UTC)}
    await conn.execute(api_keys.insert().values(**row))
    return public(row) | {"api_key": f"{PREFIX}{key_id}_{secret}"}


def public(row: Any) -> dict[str, Any]:
    return {k: row[k] for k in ("key_id", "name", "scopes", "rate_per_minute", "created_by", "created_at")} | {
        "revoked_at": row.get("revoked_at")}


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": 'ApiKey realm="sipas"'})


async def admit(conn: AsyncConnection, presented: str, scope: str, now: float | None = None) -> str:
    """Check the key, its scope and its bucket; return its id (the caller's identity) or raise."""
    if not presented.startswith(PREFIX) or presented.count("_") < 2:
        raise _unauthorized("malformed API key")
    key_id, _, secret = presented[len(PREFIX):].partition("_")
    row = (await conn.execute(select(api_keys).where(api_keys.c.key_id == key_id).with_for_update())).mappings().first()
    if row is None or row["revoked_at"] is not None or not hmac.compare_digest(row["secret_sha256"], _hash(secret)):
        raise _unauthorized("unknown or revoked API key")
    if scope not in row["scopes"]:
        raise Problem(403, "Forbidden", f"this API key lacks the scope {scope}",
                      type_="https://sipas.gov.vn/problems/missing-scope")
    now = time.time() if now is None else now
    rate = float(row["rate_per_minute"])
    bucket = row["tokens"]
    tokens = min(rate, float(bucket["tokens"]) + max(0.0, now - float(bucket["at"])) * rate / 60.0)
    if tokens < 1.0:
        retry = max(1, int((1.0 - tokens) * 60.0 / rate) + 1)
        raise Problem(429, "Too many requests", f"API key {key_id} is limited to {row['rate_per_minute']} "
                      "requests per minute", headers={"Retry-After": str(retry)}, retry_after=retry)
    await conn.execute(update(api_keys).where(api_keys.c.key_id == key_id)
                       .values(tokens={"tokens": tokens - 1.0, "at": now}))
    return key_id


async def revoke(conn: AsyncConnection, key_id: str) -> None:
    found = await conn.execute(update(api_keys).where(api_keys.c.key_id == key_id)
                               .values(revoked_at=dt.datetime.now(dt.UTC)).returning(api_keys.c.key_id))
    if found.first() is None:
        raise Problem(404, "Not found", f"no API key {key_id}")
