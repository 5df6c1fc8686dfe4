"""A projection: the tables a service keeps of another service's events, and its handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.envelope import Envelope

Handler = Callable[[AsyncConnection, Any, Envelope], Awaitable[None]]


@dataclass
class Projection:
    """``handlers`` maps an event name (``AgencyRegistered``) to ``on_<event>(conn, event, envelope)``.

    Handlers receive the event decoded to its latest catalogue version and must be idempotent
    upserts that depend only on the event (its data, time and ids), so a rebuild reproduces them.
    """

    name: str
    producer: str
    tables: Sequence[Table]
    handlers: dict[str, Handler] = field(default_factory=dict)

    def on(self, event_name: str) -> Callable[[Handler], Handler]:
        def wrap(fn: Handler) -> Handler:
            self.handlers[event_name] = fn
            return fn

        return wrap
