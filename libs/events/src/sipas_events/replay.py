"""Where a consumer fetches events the transport lost: the producer's own store, the record.

``HttpReplaySource`` reads a producer's ``GET /v1/events`` replay endpoint; ``StoreReplaySource``
reads a store directly (a service replaying its own events, and tests).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from sipas_events.sequencer import relay_positions
from sipas_events.store import EventStore


class ReplaySource(Protocol):
    async def fetch(self, producer: str, after: int, limit: int) -> list[bytes]:
        """Envelopes (canonical JSON with ``position``) after a position, in order."""
        ...

    async def head(self, producer: str) -> int:
        """The producer's last sequenced position."""
        ...

    async def published(self, producer: str) -> int:
        """The last position the producer's relay has handed to the transport (and the transport has
        acknowledged): what a consumer should have received by now. Sequenced events after it are on their
        way, not lost."""
        ...


class StoreReplaySource:
    def __init__(self, engines: Mapping[str, AsyncEngine]) -> None:
        self._engines = engines

    async def fetch(self, producer: str, after: int, limit: int) -> list[bytes]:
        async with self._engines[producer].connect() as conn:
            rows = await EventStore(producer).read_all(conn, after, limit)
        return [r.envelope_json() for r in rows]

    async def head(self, producer: str) -> int:
        async with self._engines[producer].connect() as conn:
            return (await EventStore(producer).head(conn))[0]

    async def published(self, producer: str) -> int:
        async with self._engines[producer].connect() as conn:
            return (await relay_positions(conn))[1]


class HttpReplaySource:
    def __init__(
        self, base_urls: Mapping[str, str], token: Callable[[], Awaitable[str]] | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._urls, self._token = dict(base_urls), token
        self._client = httpx.AsyncClient(timeout=timeout)

    async def _get(self, producer: str, params: dict[str, int]) -> Any:
        headers = {"Authorization": f"Bearer {await self._token()}"} if self._token else {}
        resp = await self._client.get(f"{self._urls[producer]}/v1/events", params=params, headers=headers)
        resp.raise_for_status()
        return resp.json()

    async def fetch(self, producer: str, after: int, limit: int) -> list[bytes]:
        from sipas_events import canonical

        doc = await self._get(producer, {"after": after, "limit": limit})
        return [canonical.dumpb(e) for e in doc["events"]]

    async def head(self, producer: str) -> int:
        doc = await self._get(producer, {"after": 0, "limit": 0})
        return int(doc["head"])

    async def published(self, producer: str) -> int:
        doc = await self._get(producer, {"after": 0, "limit": 0})
        return int(doc.get("published", doc["head"]))  # a producer that does not say: its head

    async def chain(self, producer: str, at: int) -> str:
        """The producer's chain hash (hex) at a position."""
        headers = {"Authorization": f"Bearer {await self._token()}"} if self._token else {}
        resp = await self._client.get(f"{self._urls[producer]}/v1/events/chain", params={"at": at}, headers=headers)
        resp.raise_for_status()
        return str(resp.json()["chain_hash"])

    async def close(self) -> None:
        await self._client.aclose()
