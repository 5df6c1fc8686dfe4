"""The event catalogue: frozen, versioned pydantic models looked up by (type, version).

A published version never changes. A breaking change is a new version registered beside the old
one, plus an upcaster that turns the old payload into the new; readers always see the latest.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, model_validator

from sipas_events.envelope import Envelope, parse_type
from sipas_events.envelope import event_type as type_name

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]


class Event(BaseModel):
    """Base of every catalogue event: an immutable, past-tense fact."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_service: ClassVar[str]
    event_name: ClassVar[str]
    event_version: ClassVar[int]
    event_summary: ClassVar[str] = ""

    @model_validator(mode="before")
    @classmethod
    def _nfc(cls, data: Any) -> Any:
        # Vietnamese text arrives both precomposed and decomposed; store one form. One pass over the
        # fields, not a validator a field: decoding an event is on every consumer's path, and ASCII text
        # (most of it: ids, codes) is NFC already.
        if isinstance(data, dict) and any(isinstance(v, str) and not v.isascii() for v in data.values()):
            return {k: unicodedata.normalize("NFC", v) if isinstance(v, str) else v for k, v in data.items()}
        return data

    @classmethod
    def event_type(cls) -> str:
        return type_name(cls.event_service, cls.event_name, cls.event_version)

    def partition(self) -> str | None:
        """The province this event concerns (its subject token), or None for national."""
        value = getattr(self, "province", None)
        return value if isinstance(value, str) else None

    def payload(self) -> Payload:
        return self.model_dump(mode="json")


E = TypeVar("E", bound=type[Event])


class UnknownEventType(LookupError):
    pass


@dataclass(frozen=True)
class EventSpec:
    service: str
    name: str
    version: int
    model: type[Event]
    latest: bool

    @property
    def type(self) -> str:
        return type_name(self.service, self.name, self.version)


class Catalogue:
    def __init__(self) -> None:
        self._models: dict[tuple[str, str, int], type[Event]] = {}
        self._upcasters: dict[tuple[str, str, int], Upcaster] = {}
        self._latest: dict[tuple[str, str], int] = {}  # (service, name) → its latest version, as registered
        self._current: dict[str, type[Event]] = {}  # types met that are their event's latest version → its model

    def register(self, service: str, version: int = 1, summary: str = "") -> Callable[[E], E]:
        def wrap(model: E) -> E:
            key = (service, model.__name__, version)
            if key in self._models:
                raise ValueError(f"{type_name(*key)} is registered twice")
            model.event_service, model.event_name, model.event_version = service, model.__name__, version
            model.event_summary = summary or (model.__doc__ or "").strip().split("\n")[0]
            self._models[key] = model
            self._latest[(service, model.__name__)] = max(version, self._latest.get((service, model.__name__), 0))
            self._current.clear()  # a newer version makes an older one need upcasting
            return model

        return wrap

    def upcaster(self, service: str, name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        def wrap(fn: Upcaster) -> Upcaster:
            self._upcasters[(service, name, from_version)] = fn
            return fn

        return wrap

    def latest_version(self, service: str, name: str) -> int:
        try:
            return self._latest[(service, name)]
        except KeyError:
            raise UnknownEventType(f"no event {service}.{name}") from None

    def model(self, type_: str) -> type[Event]:
        key = parse_type(type_)
        try:
            return self._models[key]
        except KeyError:
            raise UnknownEventType(f"unknown event type {type_}") from None

    def knows(self, type_: str) -> bool:
        try:
            return parse_type(type_) in self._models
        except ValueError:
            return False

    def upcast(self, type_: str, data: Payload) -> tuple[type[Event], Payload]:
        current = self._current.get(type_)
        if current is not None:  # the latest version already: nothing to do (most events, asked once each)
            return current, data
        service, name, version = parse_type(type_)
        if version == self.latest_version(service, name) and (service, name, version) in self._models:
            self._current[type_] = self._models[(service, name, version)]
        latest = self.latest_version(service, name)
        while version < latest:
            step = self._upcasters.get((service, name, version))
            if step is None:
                raise UnknownEventType(f"no upcaster for {type_name(service, name, version)}")
            data = step(dict(data))
            version += 1
        return self._models[(service, name, latest)], data

    def decode(self, envelope: Envelope) -> Event:
        """The envelope's payload as the latest version of its event."""
        model, data = self.upcast(envelope.type, envelope.data)
        return model.model_validate(data)

    def specs(self) -> Iterator[EventSpec]:
        for (service, name, version), model in sorted(self._models.items()):
            yield EventSpec(service, name, version, model, version == self.latest_version(service, name))

    def check(self) -> list[str]:
        """Problems with the catalogue itself: a gap in versions or a missing upcaster."""
        problems = []
        for spec in self.specs():
            if spec.version > 1 and (spec.service, spec.name, spec.version - 1) not in self._models:
                problems.append(f"{spec.type}: version {spec.version - 1} is missing")
            if not spec.latest and (spec.service, spec.name, spec.version) not in self._upcasters:
                problems.append(f"{spec.type}: no upcaster to version {spec.version + 1}")
        return problems


CATALOGUE = Catalogue()
event = CATALOGUE.register
upcaster = CATALOGUE.upcaster
