"""Where publishing reads a snapshot's figures: scoring's ``GET /v1/snapshots/{id}``.

Publishing never reads scoring's database. It asks scoring over HTTP (as a ``service``), rebuilds
the figures document from the answer and checks it against the ``figures_digest`` that the
``ScoreSnapshotTaken`` event carried before using a single number of it.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from sipas_publishing.domain.errors import FiguresMismatch
from sipas_publishing.domain.manifest import figures_digest

# What scoring's snapshot endpoint adds around the figures document it hashed.
SNAPSHOT_FIELDS = ("snapshot_id", "taken_at", "taken_by", "positions", "chain_heads", "digest", "provisional")


class SnapshotSource(Protocol):
    async def figures(self, snapshot_id: str) -> dict[str, Any]:
        """The snapshot's figures document, exactly as scoring hashed it."""
        ...


class HttpSnapshotSource:
    """``client`` may be bound to an in-process app (tests) or be a plain client to the scoring peer."""

    def __init__(self, base_url: str, token: str | None, client: httpx.AsyncClient | None = None) -> None:
        self._base, self._token = base_url.rstrip("/"), token
        self._client = client or httpx.AsyncClient(timeout=30.0)

    async def figures(self, snapshot_id: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        resp = await self._client.get(f"{self._base}/v1/snapshots/{snapshot_id}", headers=headers)
        resp.raise_for_status()
        body = resp.json()
        return {k: v for k, v in body.items() if k not in SNAPSHOT_FIELDS}


async def verified_figures(source: SnapshotSource, snapshot_id: str, expected: str) -> dict[str, Any]:
    document = await source.figures(snapshot_id)
    found = figures_digest(document)
    if found != expected:
        raise FiguresMismatch(f"snapshot {snapshot_id}'s figures hash to {found}, not to the recorded {expected}")
    return document
