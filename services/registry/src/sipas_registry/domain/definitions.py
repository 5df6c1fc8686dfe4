"""Instruments and scoring schemes as versioned data: validation and the draft → published life.

A version is drafted (and may be redrafted) until it is published; from then on it is immutable and
a change is a new version. Only published versions may be referenced by a campaign.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sipas_events.catalogue.base import Event
from sipas_events.catalogue.registry import (
    InstrumentDefinition,
    InstrumentDrafted,
    InstrumentPublished,
    SchemeDefinition,
    SchemeDrafted,
    SchemePublished,
)
from sipas_registry.domain.errors import AlreadyExists, Immutable, NotFound, RegistryError

Kind = Literal["instrument", "scheme"]
Status = Literal["draft", "published"]


@dataclass(frozen=True)
class Version:
    version: int
    status: Status


def _dupes(values: Sequence[object]) -> list[object]:
    return sorted((v for v, n in Counter(values).items() if n > 1), key=str)


def validate_instrument(d: InstrumentDefinition) -> None:
    values = [level.value for level in d.scale]
    if dup := _dupes(values):
        raise RegistryError(f"scale values repeat: {dup}", "definition.scale")
    if values != sorted(values):
        raise RegistryError("scale levels must be listed from lowest to highest value", "definition.scale")
    satisfied = [level.satisfied for level in d.scale]
    if all(satisfied) or not any(satisfied):
        raise RegistryError("the scale needs at least one satisfied and one not-satisfied level", "definition.scale")
    if dup := _dupes([f.code for f in d.factors]):
        raise RegistryError(f"factor codes repeat: {dup}", "definition.factors")
    codes = [i.code for f in d.factors for i in f.items]
    codes += [f.overall_item.code for f in d.factors if f.overall_item]
    codes += [d.overall_item.code] if d.overall_item else []
    if dup := _dupes(codes):
        raise RegistryError(f"item codes repeat (an item belongs to exactly one factor): {dup}", "definition.factors")
    if d.expectations is not None:
        options = [o.code for o in d.expectations.options]
        if dup := _dupes(options):
            raise RegistryError(f"expectation options repeat: {dup}", "definition.expectations")
        if d.expectations.max_choices > len(options):
            raise RegistryError(f"max_choices {d.expectations.max_choices} exceeds the {len(options)} options",
                                "definition.expectations.max_choices")


def validate_scheme(d: SchemeDefinition) -> None:
    levels = [p.level for p in d.points]
    if dup := _dupes(levels):
        raise RegistryError(f"points are given twice for levels {dup}", "definition.points")
    if d.kind == "points":
        if not d.points:
            raise RegistryError("a points scheme gives the points of every scale level", "definition.points")
        if d.rounding.rule != "truncate":
            raise RegistryError("the points scheme truncates (METHODOLOGY §3b): set rounding.rule to truncate",
                                "definition.rounding.rule")
    elif d.points:
        raise RegistryError(f"a {d.kind} scheme has no points per level", "definition.points")


def check_pairing(instrument: InstrumentDefinition, scheme: SchemeDefinition) -> None:
    """Can a campaign score this instrument with this scheme?"""
    if scheme.kind == "points":
        missing = sorted({s.value for s in instrument.scale} - {p.level for p in scheme.points})
        if missing:
            raise RegistryError(f"the scheme gives no points for scale levels {missing}", "scheme")
    if scheme.factor_index == "overall_item" and any(f.overall_item is None for f in instrument.factors):
        raise RegistryError("the scheme scores factors by their overall item, but a factor has none", "scheme")
    if scheme.overall_index == "overall_item" and instrument.overall_item is None:
        raise RegistryError("the scheme's overall index is the overall item, which the instrument lacks", "scheme")


def draft(kind: Kind, ident: str, versions: Sequence[Version],
          definition: InstrumentDefinition | SchemeDefinition) -> Event:
    """A new draft version (one more than the latest); refused while the latest is still a draft."""
    latest = max(versions, key=lambda v: v.version, default=None)
    if latest is not None and latest.status == "draft":
        raise AlreadyExists(f"{kind} {ident} version {latest.version} is still a draft: change it instead", "version")
    return _drafted(kind, ident, (latest.version if latest else 0) + 1, definition)


def redraft(kind: Kind, ident: str, current: Version | None,
            definition: InstrumentDefinition | SchemeDefinition) -> Event:
    if current is None:
        raise NotFound(f"{kind} {ident} has no such version", "version")
    if current.status == "published":
        raise Immutable(f"{kind} {ident} version {current.version} is published and immutable; "
                        f"draft version {current.version + 1} instead", "version")
    return _drafted(kind, ident, current.version, definition)


def publish(kind: Kind, ident: str, current: Version | None,
            definition: InstrumentDefinition | SchemeDefinition) -> Event:
    if current is None:
        raise NotFound(f"{kind} {ident} has no such version", "version")
    if current.status == "published":
        raise Immutable(f"{kind} {ident} version {current.version} is already published", "version")
    if kind == "instrument":
        assert isinstance(definition, InstrumentDefinition)
        return InstrumentPublished(instrument_id=ident, instrument_version=current.version, definition=definition)
    assert isinstance(definition, SchemeDefinition)
    return SchemePublished(scheme_id=ident, scheme_version=current.version, definition=definition)


def _drafted(kind: Kind, ident: str, version: int, definition: InstrumentDefinition | SchemeDefinition) -> Event:
    if kind == "instrument":
        assert isinstance(definition, InstrumentDefinition)
        validate_instrument(definition)
        return InstrumentDrafted(instrument_id=ident, instrument_version=version, definition=definition)
    assert isinstance(definition, SchemeDefinition)
    validate_scheme(definition)
    return SchemeDrafted(scheme_id=ident, scheme_version=version, definition=definition)
