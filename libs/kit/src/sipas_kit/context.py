"""What a running service holds: settings, engine, bus, store, relay, consumers, metrics."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from sipas_events.bus.jetstream import JetStreamBus
from sipas_events.consumer import Consumer
from sipas_events.relay import Relay
from sipas_events.replay import HttpReplaySource
from sipas_events.store import EventStore
from sipas_kit.metrics import ServiceMetrics
from sipas_kit.settings import ServiceSettings


@dataclass
class ServiceContext:
    service: str
    package: str
    settings: ServiceSettings
    engine: AsyncEngine
    metrics: ServiceMetrics
    store: EventStore
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    bus: JetStreamBus | None = None
    relay: Relay | None = None
    consumers: dict[str, Consumer] = field(default_factory=dict)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    head_revision: str | None = None
    audit_enabled: bool | None = None
    """Whether the database has the audit table (checked on the first audited request)."""
    replay: HttpReplaySource | None = None
    """Peers' replay endpoints (gap filling; chain heads for snapshots); None when none configured."""

    def consumer(self, projection: str) -> Consumer:
        try:
            return self.consumers[projection]
        except KeyError:
            from sipas_kit.problems import Problem

            raise Problem(404, "Not found", f"no projection {projection!r} in {self.service}; "
                          f"known: {', '.join(sorted(self.consumers)) or 'none'}") from None
