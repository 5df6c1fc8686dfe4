"""Agencies and administrative units: pure decisions, no I/O.

``register`` turns a command into events or raises a ``RegistryError``; ``evolve`` folds events
into state. The application layer supplies what needs a lookup (parent, code uniqueness).
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass, replace

from sipas_events.catalogue.base import Event
from sipas_events.catalogue.registry import AgencyRegistered

LEVELS_WITH_PROVINCE = {"province", "department", "district", "commune", "central_in_province"}
DISTRICTS_ABOLISHED = dt.date(2025, 7, 1)


class RegistryError(Exception):
    """A command the registry refuses; ``field`` names the input at fault, when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        error = {"field": f"body.{field}", "message": message, "type": "domain"}
        self.problem_extra = {"errors": [error]} if field else {}


class AlreadyExists(RegistryError):
    pass


class NotFound(RegistryError):
    pass


@dataclass(frozen=True)
class Agency:
    agency_id: str
    code: str
    name: str
    level: str
    parent_id: str | None
    province: str | None
    valid_from: dt.date
    valid_to: dt.date | None
    version: int = 0


@dataclass(frozen=True)
class RegisterAgency:
    agency_id: str
    code: str
    name: str
    level: str
    parent_id: str | None
    province: str | None
    valid_from: dt.date
    valid_to: dt.date | None = None


def register(state: Agency | None, cmd: RegisterAgency, parent: Agency | None) -> list[Event]:
    if state is not None:
        raise AlreadyExists(f"agency {cmd.agency_id} is already registered", "agency_id")
    if cmd.valid_to is not None and cmd.valid_to < cmd.valid_from:
        raise RegistryError("valid_to is before valid_from", "valid_to")
    if cmd.level in LEVELS_WITH_PROVINCE and cmd.province is None:
        raise RegistryError(f"a {cmd.level} belongs to a province: give its code", "province")
    if cmd.level == "district" and cmd.valid_from >= DISTRICTS_ABOLISHED:
        raise RegistryError("the district level was abolished on 2025-07-01", "valid_from")
    if cmd.parent_id is not None:
        if parent is None:
            raise NotFound(f"parent {cmd.parent_id} is not in the registry", "parent_id")
        if parent.province is not None and parent.province != cmd.province:
            raise RegistryError(f"parent {parent.code} is in province {parent.province}, not {cmd.province}",
                                "province")
    return [AgencyRegistered(
        agency_id=cmd.agency_id, code=cmd.code, name=unicodedata.normalize("NFC", cmd.name), level=cmd.level,  # type: ignore[arg-type]
        parent_id=cmd.parent_id, province=cmd.province, valid_from=cmd.valid_from, valid_to=cmd.valid_to,
    )]


def evolve(state: Agency | None, event: Event) -> Agency | None:
    if isinstance(event, AgencyRegistered):
        return Agency(event.agency_id, event.code, event.name, event.level, event.parent_id, event.province,
                      event.valid_from, event.valid_to, 1)
    return replace(state, version=state.version + 1) if state else state


def search_key(name: str) -> str:
    """Accent-insensitive search form: ``Hà Nội`` -> ``ha noi`` (đ -> d as Vietnamese readers expect)."""
    decomposed = unicodedata.normalize("NFD", name.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn").casefold()
