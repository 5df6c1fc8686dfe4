"""Each campaign's data key and pseudonym salt: created on first use, wrapped by the master key,
destroyed at the end of retention (crypto-shredding)."""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_sampling.adapters.keys import KeySource
from sipas_sampling.adapters.tables import campaign_keys
from sipas_sampling.domain.errors import SamplingError


class Shredded(SamplingError):
    """The campaign's personal data was destroyed at the end of its retention period."""


async def _secrets(conn: AsyncConnection, keys: KeySource, campaign_id: str) -> tuple[bytes, bytes]:
    context = campaign_id.encode()
    await conn.execute(pg_insert(campaign_keys).values(
        campaign_id=campaign_id, key_ref=keys.key_ref, wrapped_key=keys.wrap(secrets.token_bytes(32), context),
        wrapped_salt=keys.wrap(secrets.token_bytes(32), context + b"|salt"), created_at=dt.datetime.now(dt.UTC),
    ).on_conflict_do_nothing())
    row = (await conn.execute(select(campaign_keys).where(campaign_keys.c.campaign_id == campaign_id))).one()
    if row.wrapped_key is None:
        raise Shredded(f"the personal data of campaign {campaign_id} was destroyed on {row.shredded_at:%Y-%m-%d}")
    return keys.unwrap(row.wrapped_key, context), keys.unwrap(row.wrapped_salt, context + b"|salt")


async def data_key(conn: AsyncConnection, keys: KeySource, campaign_id: str) -> bytes:
    return (await _secrets(conn, keys, campaign_id))[0]


async def pseudonym_salt(conn: AsyncConnection, keys: KeySource, campaign_id: str) -> bytes:
    return (await _secrets(conn, keys, campaign_id))[1]


async def shred(conn: AsyncConnection, campaign_id: str) -> bool:
    """Destroy the wrapped key and salt; True if this call did it."""
    result = await conn.execute(
        update(campaign_keys)
        .where(campaign_keys.c.campaign_id == campaign_id, campaign_keys.c.wrapped_key.is_not(None))
        .values(wrapped_key=None, wrapped_salt=None, shredded_at=dt.datetime.now(dt.UTC)))
    return bool(result.rowcount)  # type: ignore[attr-defined]
