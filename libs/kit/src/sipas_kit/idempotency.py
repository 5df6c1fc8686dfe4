"""``Idempotency-Key`` for POSTs: the stored response is committed with the effect it describes.

A retried request with the same key and the same body gets the first response again (with
``Idempotent-Replayed: true``); the same key with a different body is a 422. Two concurrent
requests with one key serialise on the key's primary key, so only one effect ever happens.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events import canonical
from sipas_events.schema import idempotency_keys
from sipas_kit.problems import Problem

HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class Replay:
    status_code: int
    body: Any


def key_of(request: Request) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= 200 or not key.isascii():
        raise Problem(422, "Invalid request", f"{HEADER} must be 1-200 ASCII characters",
                      errors=[{"field": f"header.{HEADER}", "message": "1-200 ASCII characters",
                               "type": "value_error"}])
    return key


def request_hash(method: str, path: str, body: Any) -> str:
    return hashlib.sha256(canonical.dumpb({"m": method, "p": path, "b": body})).hexdigest()


async def claim(conn: AsyncConnection, principal: str, key: str, method: str, path: str, digest: str) -> Replay | None:
    """Reserve the key in this transaction; return the earlier response if there was one.

    Inserts a placeholder row that the caller fills with ``store`` before committing. If the key
    exists, the insert waits for the other transaction and then reads its stored response.
    """
    inserted = await conn.execute(
        pg_insert(idempotency_keys)
        .values(principal=principal, key=key, method=method, path=path, request_hash=digest,
                status_code=0, response={})
        .on_conflict_do_nothing()
        .returning(idempotency_keys.c.key)
    )
    if inserted.first() is not None:
        return None
    row = (await conn.execute(
        select(idempotency_keys.c.request_hash, idempotency_keys.c.status_code, idempotency_keys.c.response)
        .where(idempotency_keys.c.principal == principal, idempotency_keys.c.key == key)
    )).one()
    if row.request_hash != digest:
        raise Problem(422, "Idempotency key reused", f"{HEADER} {key!r} was already used for a different request",
                      errors=[{"field": f"header.{HEADER}", "message": "already used with another body",
                               "type": "idempotency_conflict"}])
    return Replay(row.status_code, row.response)


async def store(conn: AsyncConnection, principal: str, key: str, status_code: int, body: Any) -> None:
    await conn.execute(
        idempotency_keys.update()
        .where(idempotency_keys.c.principal == principal, idempotency_keys.c.key == key)
        .values(status_code=status_code, response=body)
    )
