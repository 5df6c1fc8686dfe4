"""Administrative units and agencies over time: pure decisions, no I/O.

Each decision takes the state the application layer loaded (the unit, its parent, any unit whose
code clashes) and returns events or raises a ``RegistryError``. Dates are inclusive: a unit is valid
on ``valid_from`` … ``valid_to``; a reorganisation effective on day D ends its predecessors on D - 1.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from sipas_events.catalogue.base import Event
from sipas_events.catalogue.registry import (
    AgencyDissolved,
    AgencyMerged,
    AgencyRegistered,
    AgencyRenamed,
    AgencyReparented,
    AgencySplit,
)
from sipas_registry.domain.errors import AlreadyExists, NotFound, RegistryError

DISTRICTS_ABOLISHED = dt.date(2025, 7, 1)
LAST_DISTRICT_DAY = DISTRICTS_ABOLISHED - dt.timedelta(days=1)
LEVELS = ("ministry", "province", "department", "district", "commune", "central_in_province")
# Which levels a unit of each level may sit under (None: may stand alone).
PARENT_LEVELS: dict[str, set[str | None]] = {
    "ministry": {None},
    "province": {None},
    "department": {"province"},
    "district": {"province"},
    "commune": {"district", "province"},
    "central_in_province": {"ministry", None},
}


@dataclass(frozen=True)
class Unit:
    agency_id: str
    code: str
    name: str
    level: str
    parent_id: str | None
    province: str | None
    valid_from: dt.date
    valid_to: dt.date | None
    version: int = 0

    def valid_on(self, day: dt.date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)

    def overlaps(self, start: dt.date, end: dt.date | None) -> bool:
        return (end is None or self.valid_from <= end) and (self.valid_to is None or start <= self.valid_to)


@dataclass(frozen=True)
class RegisterUnit:
    agency_id: str
    code: str
    name: str
    level: str
    parent_id: str | None
    province: str | None
    valid_from: dt.date
    valid_to: dt.date | None = None
    legal_basis: str | None = None


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text.strip())


def search_key(name: str) -> str:
    """Accent-insensitive search form: ``Hà Nội`` -> ``ha noi`` (đ -> d as Vietnamese readers expect)."""
    decomposed = unicodedata.normalize("NFD", name.replace("đ", "d").replace("Đ", "D"))
    return " ".join("".join(c for c in decomposed if unicodedata.category(c) != "Mn").casefold().split())


def register(cmd: RegisterUnit, *, existing: Unit | None, parent: Unit | None,
             clashes: Sequence[Unit] = ()) -> AgencyRegistered:
    """A new unit. ``clashes``: units with the same code (the caller may leave out ones ending first)."""
    if existing is not None:
        raise AlreadyExists(f"agency {cmd.agency_id} is already registered", "agency_id")
    if cmd.level not in LEVELS:
        raise RegistryError(f"unknown level {cmd.level!r}; expected one of {', '.join(LEVELS)}", "level")
    valid_to = cmd.valid_to
    if cmd.level == "district":
        if cmd.valid_from > LAST_DISTRICT_DAY:
            raise RegistryError("the district level was abolished on 2025-07-01", "valid_from")
        if valid_to is None:
            valid_to = LAST_DISTRICT_DAY  # the law ended every district; say so in the event
        elif valid_to > LAST_DISTRICT_DAY:
            raise RegistryError("a district cannot be valid after 2025-06-30", "valid_to")
    if valid_to is not None and valid_to < cmd.valid_from:
        raise RegistryError("valid_to is before valid_from", "valid_to")
    if cmd.level == "ministry" and cmd.province is not None:
        raise RegistryError("a ministry is national: leave province empty", "province")
    if cmd.level != "ministry" and cmd.province is None:
        raise RegistryError(f"a {cmd.level} belongs to a province: give its two-digit code", "province")
    if cmd.level == "province" and cmd.code != cmd.province:
        raise RegistryError(f"a province's code is its province code ({cmd.province}), not {cmd.code}", "code")
    for other in clashes:
        if other.overlaps(cmd.valid_from, valid_to):
            if other.province != cmd.province:  # name nothing of another province's units
                raise AlreadyExists(f"code {cmd.code} is already used by a unit of another province", "code")
            raise AlreadyExists(f"code {cmd.code} is already used by {other.name} ({other.agency_id}) "
                                f"from {other.valid_from} to {other.valid_to or 'now'}", "code")
    _check_parent(cmd.level, cmd.province, cmd.parent_id, parent, cmd.valid_from)
    return AgencyRegistered(
        agency_id=cmd.agency_id, code=cmd.code, name=nfc(cmd.name), level=cmd.level,  # type: ignore[arg-type]
        parent_id=cmd.parent_id, province=cmd.province, valid_from=cmd.valid_from, valid_to=valid_to,
        legal_basis=cmd.legal_basis,
    )


def _check_parent(level: str, province: str | None, parent_id: str | None, parent: Unit | None,
                  on: dt.date) -> None:
    if parent_id is None:
        if None not in PARENT_LEVELS[level]:
            raise RegistryError(f"a {level} needs a parent ({' or '.join(sorted(map(str, PARENT_LEVELS[level])))})",
                                "parent_id")
        return
    if parent is None:
        raise NotFound(f"parent {parent_id} is not in the registry", "parent_id")
    if parent.level not in PARENT_LEVELS[level]:
        raise RegistryError(f"a {level} cannot sit under a {parent.level}", "parent_id")
    if not parent.valid_on(on):
        raise RegistryError(f"parent {parent.name} is not valid on {on} "
                            f"(valid {parent.valid_from} to {parent.valid_to or 'now'})", "parent_id")
    if parent.province is not None and parent.province != province:
        raise RegistryError(f"parent {parent.name} is in province {parent.province}, not {province}", "province")


def _require_open(unit: Unit, effective: dt.date, field: str) -> None:
    if effective <= unit.valid_from:
        raise RegistryError(f"{unit.name} starts on {unit.valid_from}: the effective date must be later", field)
    if unit.valid_to is not None:
        raise RegistryError(f"{unit.name} already ended on {unit.valid_to}", field)


def rename(unit: Unit, name: str, effective: dt.date, legal_basis: str) -> AgencyRenamed:
    _require_open(unit, effective, "effective_date")
    if nfc(name) == unit.name:
        raise RegistryError(f"{unit.agency_id} is already named {unit.name}", "name")
    return AgencyRenamed(agency_id=unit.agency_id, name=nfc(name), previous_name=unit.name, effective_date=effective,
                         legal_basis=legal_basis, province=unit.province)


def reparent(unit: Unit, parent: Unit | None, parent_id: str | None, effective: dt.date, legal_basis: str,
             ancestors_of_parent: Sequence[str] = ()) -> AgencyReparented:
    _require_open(unit, effective, "effective_date")
    if parent_id == unit.parent_id:
        raise RegistryError(f"{unit.name} is already under {parent_id}", "parent_id")
    if parent_id == unit.agency_id or unit.agency_id in ancestors_of_parent:
        raise RegistryError("a unit cannot be placed under itself or one of its descendants", "parent_id")
    _check_parent(unit.level, unit.province, parent_id, parent, effective)
    return AgencyReparented(agency_id=unit.agency_id, parent_id=parent_id, previous_parent_id=unit.parent_id,
                            effective_date=effective, legal_basis=legal_basis, province=unit.province)


def merge(predecessors: Sequence[Unit], successor: RegisterUnit, *, existing: Unit | None, parent: Unit | None,
          clashes: Sequence[Unit], legal_basis: str) -> list[Event]:
    """Many units become one new unit, valid from ``successor.valid_from`` (the effective date)."""
    effective = successor.valid_from
    if not predecessors:
        raise RegistryError("a merge needs at least one predecessor", "predecessor_ids")
    ids = [p.agency_id for p in predecessors]
    if len(set(ids)) != len(ids):
        raise RegistryError("a predecessor is listed twice", "predecessor_ids")
    for p in predecessors:
        _require_open(p, effective, "predecessor_ids")
        if p.level != successor.level:
            raise RegistryError(f"{p.name} is a {p.level}; the successor is a {successor.level}", "level")
    ending = set(ids)
    registered = register(successor, existing=existing, parent=parent,
                          clashes=[c for c in clashes if c.agency_id not in ending])
    registered = registered.model_copy(update={"legal_basis": legal_basis})
    return [registered, AgencyMerged(predecessor_ids=ids, successor_id=successor.agency_id, effective_date=effective,
                                     legal_basis=legal_basis, province=successor.province)]


def split(predecessor: Unit, successors: Sequence[tuple[RegisterUnit, Unit | None, Unit | None, Sequence[Unit]]],
          legal_basis: str, effective: dt.date) -> list[Event]:
    """One unit becomes several; each successor comes with (command, existing, parent, clashes)."""
    _require_open(predecessor, effective, "predecessor_id")
    if len(successors) < 2:
        raise RegistryError("a split needs at least two successors", "successors")
    codes = [cmd.code for cmd, *_ in successors]
    if len(set(codes)) != len(codes):
        raise RegistryError("two successors share a code", "successors")
    events: list[Event] = []
    for cmd, existing, parent, clashes in successors:
        if cmd.valid_from != effective:
            raise RegistryError("every successor starts on the effective date", "successors")
        if cmd.level != predecessor.level:
            raise RegistryError(f"{cmd.name} is a {cmd.level}; {predecessor.name} is a {predecessor.level}",
                                "successors")
        others = [c for c in clashes if c.agency_id != predecessor.agency_id]
        registered = register(cmd, existing=existing, parent=parent, clashes=others)
        events.append(registered.model_copy(update={"legal_basis": legal_basis}))
    events.append(AgencySplit(predecessor_id=predecessor.agency_id, successor_ids=[c.agency_id for c, *_ in successors],
                              effective_date=effective, legal_basis=legal_basis, province=predecessor.province))
    return events


def dissolve(unit: Unit, effective: dt.date, legal_basis: str) -> AgencyDissolved:
    _require_open(unit, effective, "effective_date")
    return AgencyDissolved(agency_id=unit.agency_id, effective_date=effective, legal_basis=legal_basis,
                           province=unit.province)
