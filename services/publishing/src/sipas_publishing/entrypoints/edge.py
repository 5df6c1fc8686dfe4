"""The HTTP edge shared by publishing's routes: who is reading (a JWT or an API key with a scope),
and cacheable answers (strong ETags over the canonical body; 304 on ``If-None-Match``)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Path, Query, Request
from fastapi.responses import Response

from sipas_events import canonical
from sipas_kit.auth import Principal, Role, authenticate, ensure_role
from sipas_kit.context import ServiceContext
from sipas_publishing.application import access

API_KEY_HEADER = "X-Api-Key"
NO_NUL = r"^[^\x00]*$"
"""PostgreSQL text cannot hold NUL: such input is refused here (422), not by the database (a 500)."""
PathId = Annotated[str, Path(min_length=1, max_length=200, pattern=NO_NUL)]
QueryText = Annotated[str | None, Query(max_length=200, pattern=NO_NUL)]
ProvinceCode = Annotated[str | None, Query(pattern=r"^[0-9]{2}$", description="Two-digit province code")]
STAFF = {Role.MINISTRY_ADMIN, Role.PROVINCE_OPERATOR, Role.AUDITOR, Role.SERVICE}


@dataclass(frozen=True)
class Reader:
    """Someone reading published releases: a partner key, or a signed-in person or service."""

    subject: str
    principal: Principal | None = None

    @property
    def staff(self) -> bool:
        return self.principal is not None and self.principal.role in STAFF

    def sees(self, province: str | None) -> bool:
        return self.principal is None or self.principal.role != Role.PROVINCE_OPERATOR or \
            self.principal.province == province


def reader(scope: str, roles: Collection[Role] | None = None) -> Callable[[Request], Coroutine[Any, Any, Reader]]:
    """An API key with ``scope``, or a bearer token (of one of ``roles`` when given)."""
    async def check(request: Request) -> Reader:
        presented = request.headers.get(API_KEY_HEADER)
        if presented is None:
            principal = authenticate(request)
            if roles is not None:
                ensure_role(principal, roles)
            return Reader(principal.subject, principal)
        ctx: ServiceContext = request.app.state.ctx
        async with ctx.engine.begin() as conn:
            key_id = await access.admit(conn, presented, scope)
        return Reader(f"key:{key_id}")

    return check


def etag_of(content: bytes) -> str:
    return '"' + hashlib.sha256(content).hexdigest()[:32] + '"'


def cached(request: Request, body: Any, max_age: int, immutable: bool = False,
           media_type: str = "application/json") -> Response:
    content = body if isinstance(body, bytes) else canonical.dumpb(body)
    etag = etag_of(content)
    control = f"public, max-age={max_age}" + (", immutable" if immutable else "")
    headers = {"ETag": etag, "Cache-Control": control, "Vary": f"Authorization, {API_KEY_HEADER}"}
    wanted = {t.strip() for t in request.headers.get("if-none-match", "").split(",")}
    if etag in wanted or "*" in wanted:
        return Response(status_code=304, headers=headers)
    return Response(content, media_type=media_type, headers=headers)
