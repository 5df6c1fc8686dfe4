"""What publishing asks scoring, over HTTP as a ``service`` (it never reads scoring's database):

- a snapshot's frozen figures document, ``GET /v1/snapshots/{id}/document`` — canonical JSON bytes,
  exactly what scoring hashed; their SHA-256 must equal the ``figures_digest`` the
  ``ScoreSnapshotTaken`` event carried before a single number of it is used;
- a year-on-year comparison, ``GET /v1/campaigns/{id}/comparison?against={earlier}``: the earlier
  campaign restated on today's provinces.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

import httpx

from sipas_events import canonical
from sipas_publishing.domain.errors import FiguresMismatch, ReleaseConflict, ScoringUnavailable


class ScoringSource(Protocol):
    async def document(self, snapshot_id: str) -> bytes:
        """The snapshot's figures document: the exact bytes scoring hashed."""
        ...

    async def comparison(self, campaign_id: str, against: str) -> dict[str, Any] | None:
        """``campaign_id`` beside the earlier ``against`` restated on today's provinces; None when
        scoring knows no such campaign."""
        ...


class HttpScoringSource:
    """``client`` may be bound to an in-process app (tests) or be a plain client to the scoring peer."""

    def __init__(self, base_url: str, token: str | None, client: httpx.AsyncClient | None = None) -> None:
        self._base, self._token = base_url.rstrip("/"), token
        self._client = client or httpx.AsyncClient(timeout=30.0)

    async def _get(self, path: str, what: str, **params: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            return await self._client.get(f"{self._base}{path}", params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise ScoringUnavailable(f"scoring did not answer for {what}: {exc}"[:300]) from exc

    async def document(self, snapshot_id: str) -> bytes:
        what = f"snapshot {snapshot_id}'s figures"
        resp = await self._get(f"/v1/snapshots/{snapshot_id}/document", what)
        if not resp.is_success:
            raise ScoringUnavailable(f"scoring answered {resp.status_code} for {what}")
        return resp.content

    async def comparison(self, campaign_id: str, against: str) -> dict[str, Any] | None:
        resp = await self._get(f"/v1/campaigns/{campaign_id}/comparison", f"comparing with {against}",
                               against=against)
        if resp.status_code == 404:
            return None
        if 400 <= resp.status_code < 500:  # e.g. online-766 campaigns are not restated by tallies
            raise ReleaseConflict(f"scoring cannot compare {campaign_id} with {against}: {_detail(resp)}")
        if not resp.is_success:
            raise ScoringUnavailable(f"scoring answered {resp.status_code} comparing {campaign_id} with {against}")
        found: dict[str, Any] = resp.json()
        return found


def _detail(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("detail") or resp.status_code)
    except ValueError:
        return str(resp.status_code)


async def verified_figures(source: ScoringSource, snapshot_id: str, expected: str) -> dict[str, Any]:
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
