"""Identifiers: UUIDv7 (RFC 9562), time-ordered so that ids sort roughly by creation."""

from __future__ import annotations

import uuid

import uuid6


def new_id() -> uuid.UUID:
    """A fresh UUIDv7 as a standard-library UUID."""
    return uuid.UUID(bytes=uuid6.uuid7().bytes)


def is_uuid7(value: uuid.UUID) -> bool:
    return value.version == 7
