"""The audit-chain heads a release records: every service's ``GET /v1/audit/head`` (as a ``service``),
publishing's own read from its database.

A head is ``{"position": N, "head": "<hex SHA-256>"}``: the last sealed row of that service's audit trail
when the release was drafted. Signed into the manifest, it lets an auditor show later that the trail up
to N is the one that existed then: ``GET /v1/audit/verify?upto=N`` on that service must give the same head.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import httpx

from sipas_kit.problems import Problem

PLATFORM = ("registry", "sampling", "ballots", "scoring", "publishing")


class AuditHeadSource(Protocol):
    services: tuple[str, ...]
    """The other services whose heads this source reads."""

    async def head(self, service: str) -> dict[str, Any]:
        """``{"position", "head"}`` of that service's audit chain."""
        ...


class HttpAuditHeads:
    """``client`` may be bound to an in-process app (tests) or be a plain client to the peers."""

    def __init__(self, urls: Mapping[str, str], token: str | None, client: httpx.AsyncClient | None = None) -> None:
        self._urls = {s: u.rstrip("/") for s, u in urls.items()}
        self.services = tuple(s for s in PLATFORM if s in self._urls)
        self._token, self._client = token, client or httpx.AsyncClient(timeout=10.0)

    async def head(self, service: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            resp = await self._client.get(f"{self._urls[service]}/v1/audit/head", headers=headers)
        except httpx.HTTPError as exc:
            raise unavailable(service, f"did not answer: {exc}"[:200]) from exc
        if not resp.is_success:
            raise unavailable(service, f"answered {resp.status_code}")
        found = resp.json()
        position, head = found.get("position"), found.get("head")
        if not isinstance(position, int) or not isinstance(head, str) or len(head) != 64:
            raise unavailable(service, "answered something that is not an audit head")
        return {"position": position, "head": head}


def unavailable(service: str, why: str) -> Problem:
    return Problem(503, "Service unavailable", f"cannot record {service}'s audit-chain head in the release: "
                   f"{service} {why}; draft again when it answers")
