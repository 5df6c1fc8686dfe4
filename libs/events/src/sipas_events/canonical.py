"""Canonical JSON: one byte sequence per value, so hashes and exports are reproducible.

Keys sorted, no insignificant white space, UTF-8 (not ASCII escapes), no NaN or infinities,
datetimes in UTC ISO 8601 with microseconds and a ``Z``, decimals as strings (exact arithmetic
never passes through a binary float), UUIDs as lowercase hex with dashes.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import hashlib
import json
import uuid
from collections.abc import Iterable
from typing import Any


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return format_time(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot serialise {type(value).__name__} canonically")


def format_time(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetime: every time in SIPAS is timezone-aware UTC")
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dumps(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
        default=_default,
    )


def dumpb(value: Any) -> bytes:
    return dumps(value).encode("utf-8")


def sha256_lines(lines: Iterable[Any]) -> str:
    """SHA-256 over canonical JSON lines (each value, then a newline)."""
    digest = hashlib.sha256()
    for line in lines:
        digest.update(dumpb(line))
        digest.update(b"\n")
    return digest.hexdigest()
