"""The snapshot source: scoring's frozen document is used only when its bytes hash to the digest the
``ScoreSnapshotTaken`` event recorded, and read back to exactly those canonical bytes."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from sipas_events import canonical
from sipas_publishing.adapters.scoring import HttpScoringSource, verified_figures
from sipas_publishing.domain.errors import FiguresMismatch, ScoringUnavailable

pytestmark = pytest.mark.asyncio
DOCUMENT = {"campaign_id": "c26", "year": 2026, "units": [
    {"id": "a1", "level": "agency", "name": "Sở Tư pháp", "overall": {"value": "81.25", "n": 40}}]}
GENUINE = canonical.dumpb(DOCUMENT)
DIGEST = hashlib.sha256(GENUINE).hexdigest()


def scoring(body: bytes, status: int = 200) -> tuple[HttpScoringSource, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, content=body, headers={"content-type": "application/json"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    return HttpScoringSource("http://scoring/", "tok", client=client), seen


async def test_the_frozen_document_is_read_as_scoring_hashed_it() -> None:
    source, seen = scoring(GENUINE)
    assert await verified_figures(source, "s1", DIGEST) == DOCUMENT
    assert [str(r.url) for r in seen] == ["http://scoring/v1/snapshots/s1/document"]
    assert seen[0].headers["authorization"] == "Bearer tok"


async def test_an_edited_figure_is_refused() -> None:
    edited = GENUINE.replace(b'"81.25"', b'"91.25"')
    source, _ = scoring(edited)
    with pytest.raises(FiguresMismatch, match="hash to"):
        await verified_figures(source, "s1", DIGEST)


async def test_bytes_that_are_not_canonical_are_refused_even_when_their_hash_is_recorded() -> None:
    pretty = json.dumps(DOCUMENT, indent=2).encode()  # same figures, but the manifest could never verify
    source, _ = scoring(pretty)
    with pytest.raises(FiguresMismatch, match="canonical"):
        await verified_figures(source, "s1", hashlib.sha256(pretty).hexdigest())


async def test_scoring_refusing_is_unavailable_not_a_crash() -> None:
    source, _ = scoring(b'{"title":"Not found"}', status=404)
    with pytest.raises(ScoringUnavailable, match="s1"):
        await verified_figures(source, "s1", DIGEST)
