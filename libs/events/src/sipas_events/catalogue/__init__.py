"""The catalogue: importing this package registers every event of every producing service."""

from sipas_events.catalogue import ballots, publishing, registry, sampling, scoring
from sipas_events.catalogue.base import CATALOGUE, Catalogue, Event, EventSpec, UnknownEventType

__all__ = [
    "CATALOGUE", "Catalogue", "Event", "EventSpec", "UnknownEventType",
    "ballots", "publishing", "registry", "sampling", "scoring",
]
