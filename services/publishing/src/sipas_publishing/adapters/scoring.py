"""Where publishing reads a snapshot's figures: scoring's ``GET /v1/snapshots/{id}/document``.

Publishing never reads scoring's database. It asks scoring over HTTP (as a ``service``) for the
frozen figures document as scoring hashed it — canonical JSON bytes — and checks their SHA-256
against the ``figures_digest`` that the ``ScoreSnapshotTaken`` event carried before using a single
number of it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

import httpx

from sipas_events import canonical
from sipas_publishing.domain.errors import FiguresMismatch, ScoringUnavailable


class SnapshotSource(Protocol):
    async def document(self, snapshot_id: str) -> bytes:
        """The snapshot's figures document: the exact bytes scoring hashed."""
        ...


class HttpSnapshotSource:
    """``client`` may be bound to an in-process app (tests) or be a plain client to the scoring peer."""

    def __init__(self, base_url: str, token: str | None, client: httpx.AsyncClient | None = None) -> None:
        self._base, self._token = base_url.rstrip("/"), token
        self._client = client or httpx.AsyncClient(timeout=30.0)

    async def document(self, snapshot_id: str) -> bytes:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            resp = await self._client.get(f"{self._base}/v1/snapshots/{snapshot_id}/document", headers=headers)
            resp.raise_for_status()
        except httpx.HTTPError as exc:
            raise ScoringUnavailable(f"scoring did not serve snapshot {snapshot_id}'s figures: {exc}"[:300]) from exc
        return resp.content


async def verified_figures(source: SnapshotSource, snapshot_id: str, expected: str) -> dict[str, Any]:
    """The document, once its bytes hash to ``expected`` and read back to those same canonical bytes
    (the manifest re-serialises it, so anything else could never verify)."""
    raw = await source.document(snapshot_id)
    found = hashlib.sha256(raw).hexdigest()
    if found != expected:
        raise FiguresMismatch(f"snapshot {snapshot_id}'s figures hash to {found}, not to the recorded {expected}")
    document = json.loads(raw)
    if not isinstance(document, dict) or canonical.dumpb(document) != raw:
        raise FiguresMismatch(f"snapshot {snapshot_id}'s figures are not a canonical JSON object")
    return document
