"""Cursor pagination: an opaque, URL-safe cursor holding the last row's sort key."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from sipas_kit.problems import Problem

T = TypeVar("T")
MAX_LIMIT = 500


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(default=None, description="Pass as ?cursor= to get the next page")


def encode_cursor(key: Sequence[Any]) -> str:
    raw = json.dumps(list(key), separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> list[Any] | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(value, list):
            raise ValueError
        return value
    except (ValueError, UnicodeDecodeError):
        raise Problem(422, "Invalid request", "cursor is not one this API issued",
                      errors=[{"field": "query.cursor", "message": "unknown cursor", "type": "value_error"}]) from None


def page_of(rows: Sequence[T], limit: int, key: Any) -> Page[T]:
    """``rows`` fetched with ``limit + 1``; ``key(row)`` gives the sort key of a row."""
    more = len(rows) > limit
    items = list(rows[:limit])
    return Page[T](items=items, next_cursor=encode_cursor(key(items[-1])) if more and items else None)
