"""The CloudEvents 1.0 envelope (structured JSON mode) every SIPAS event travels in.

Extensions (CloudEvents extension attributes are lowercase alphanumerics):
- ``sequence``: the event's version within its aggregate (``subject``), starting at 1;
- ``position``: its place in the producer's event store, gapless, assigned after commit;
- ``correlationid`` / ``causationid``: the request that started it and the event or command that caused it;
- ``actor``: who did it (a user id, ``service:<name>`` or ``system``);
- ``province``: the province code it concerns, or ``None`` for national events.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sipas_events import canonical

TYPE_PREFIX = "vn.gov.sipas."
NATIONAL = "national"


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: Literal["1.0"] = "1.0"
    id: uuid.UUID
    source: str = Field(pattern=r"^/sipas/[a-z]+$")
    type: str = Field(pattern=r"^vn\.gov\.sipas\.[a-z]+\.[A-Z][A-Za-z0-9]+\.v[1-9][0-9]*$")
    subject: str = Field(min_length=1, max_length=200)
    time: dt.datetime
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]
    sequence: int = Field(ge=1)
    position: int | None = Field(default=None, ge=1)
    correlationid: str = Field(min_length=1, max_length=100)
    causationid: str | None = Field(default=None, max_length=100)
    actor: str = Field(min_length=1, max_length=200)
    province: str | None = Field(default=None, pattern=r"^[0-9]{2}$")

    @field_validator("time")
    @classmethod
    def _utc(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            raise ValueError("time must carry a timezone")
        return value.astimezone(dt.UTC)

    @property
    def service(self) -> str:
        return self.source.rsplit("/", 1)[1]

    @property
    def event_name(self) -> str:
        return _event_name(self.type)

    @property
    def event_version(self) -> int:
        return int(self.type.split(".")[5][1:])

    def body(self) -> dict[str, Any]:
        """The JSON-ready dict without ``position`` (what the producer's store hashes)."""
        out = self.model_dump(mode="python", exclude={"position"})
        return out

    def to_dict(self) -> dict[str, Any]:
        out = self.model_dump(mode="python")
        if out["position"] is None:
            del out["position"]
        return out

    def to_json(self) -> bytes:
        """Canonical structured-mode JSON: what partners and consumers receive."""
        return canonical.dumpb(self.to_dict())

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope:
        return cls.model_validate_json(raw)


class Stamp(NamedTuple):
    """What a consumer's runs read of an envelope — its id, type, time, position, correlation id and event
    name — without its data: a rebuild's reader in a process of its own sends this (a tuple crosses a pipe
    in a few microseconds, an :class:`Envelope` in tens) beside the event its projection prepared, and keeps
    the envelope's bytes for whoever needs the whole (a dead letter, a fallback to the handlers)."""

    id: uuid.UUID
    type: str
    time: dt.datetime
    position: int
    correlationid: str
    event_name: str

    @classmethod
    def of(cls, envelope: Envelope) -> Stamp:
        assert envelope.position is not None
        return cls(envelope.id, envelope.type, envelope.time, envelope.position, envelope.correlationid,
                   envelope.event_name)


@functools.lru_cache(maxsize=1024)
def _event_name(type_: str) -> str:
    """``vn.gov.sipas.registry.AgencyRegistered.v1`` -> ``AgencyRegistered`` (asked several times an event)."""
    return type_.split(".")[4]


def event_type(service: str, name: str, version: int) -> str:
    return f"{TYPE_PREFIX}{service}.{name}.v{version}"


def parse_type(type_: str) -> tuple[str, str, int]:
    """``vn.gov.sipas.registry.AgencyRegistered.v1`` -> (``registry``, ``AgencyRegistered``, 1)."""
    if not type_.startswith(TYPE_PREFIX):
        raise ValueError(f"not a SIPAS event type: {type_!r}")
    parts = type_[len(TYPE_PREFIX):].split(".")
    if len(parts) != 3 or not parts[2].startswith("v") or not parts[2][1:].isdigit():
        raise ValueError(f"malformed event type: {type_!r}")
    return parts[0], parts[1], int(parts[2][1:])
