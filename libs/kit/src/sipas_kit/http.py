"""HTTP edge helpers: correlation ids, access log and metrics, command execution."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import structlog
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.ids import new_id
from sipas_events.store import ConcurrencyError, Metadata
from sipas_kit import audit, idempotency
from sipas_kit.auth import Principal
from sipas_kit.context import ServiceContext
from sipas_kit.problems import Problem

log = structlog.get_logger("sipas.http")
CORRELATION_HEADER = "X-Correlation-Id"
_CID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


def install_middleware(app: FastAPI) -> None:
    @app.middleware("http")
    async def correlate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        incoming = request.headers.get(CORRELATION_HEADER, "")
        cid = incoming if _CID.match(incoming) else str(new_id())
        request.state.correlation_id = cid
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(correlation_id=cid)
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers[CORRELATION_HEADER] = cid
            return response
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(request.scope.get("route"), "path", "unmatched")
            ctx: ServiceContext | None = getattr(request.app.state, "ctx", None)
            if ctx is not None:
                ctx.metrics.http_requests.labels(request.method, route, str(status)).inc()
                ctx.metrics.http_latency.labels(request.method, route).observe(elapsed)
            if route not in ("/metrics", "/healthz", "/readyz"):
                log.info("http.request", method=request.method, path=audit.shown_path(request), route=route,
                         status=status, ms=round(elapsed * 1000, 1))
            if ctx is not None:
                await _audit(ctx, request, status)


async def _audit(ctx: ServiceContext, request: Request, status: int) -> None:
    if getattr(request.state, "audited", False):
        return  # written with the command's own transaction (run_command)
    body = audit.entry(request, ctx.service, status)
    if body is None:
        return
    try:
        if ctx.audit_enabled is None:
            ctx.audit_enabled = await audit.enabled(ctx.engine)
        if ctx.audit_enabled:
            await audit.record(ctx.engine, body)
    except Exception as exc:  # the answer is already given; say loudly that its audit row is missing
        log.error("audit.record_failed", error=repr(exc)[:300], method=request.method, path=audit.shown_path(request))


async def _audit_within(conn: AsyncConnection, ctx: ServiceContext, request: Request, status: int) -> bool:
    body = audit.entry(request, ctx.service, status)
    if body is None or not ctx.audit_enabled:  # known before the transaction began (run_command)
        return False
    await audit.write(conn, body)
    return True


async def get_ctx(request: Request) -> ServiceContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


Ctx = Annotated[ServiceContext, Depends(get_ctx)]


def metadata(request: Request, principal: Principal, causation: str | None = None) -> Metadata:
    return Metadata(correlation_id=request.state.correlation_id, actor=principal.actor, causation_id=causation)


Decide = Callable[[AsyncConnection], Awaitable[tuple[int, Any]]]


async def run_command(ctx: ServiceContext, request: Request, principal: Principal, decide: Decide,
                      attempts: int = 3) -> JSONResponse:
    """Load, decide, append and commit once, honouring ``Idempotency-Key``; retry on a concurrent write.

    The request's audit row is written in the same transaction, so a command's effects never commit
    without it (a process killed between the commit and a separate audit insert would lose the row);
    a request refused before or outside this transaction is audited by the middleware as before."""
    if ctx.audit_enabled is None:  # asked before the transaction: a second checkout inside it could deadlock
        with contextlib.suppress(Exception):  # the pool under concurrent commands (each holding one already)
            ctx.audit_enabled = await audit.enabled(ctx.engine)
    key = idempotency.key_of(request)
    digest = idempotency.request_hash(request.method, request.url.path, (await request.body()).hex()) if key else ""
    for attempt in range(attempts):
        try:
            async with ctx.engine.begin() as conn:
                if key:
                    replay = await idempotency.claim(conn, principal.subject, key, request.method,
                                                     request.url.path, digest)
                    if replay is not None:
                        ctx.metrics.idempotent_replays.inc()
                        return JSONResponse(replay.body, replay.status_code, headers={"Idempotent-Replayed": "true"})
                status, body = await decide(conn)
                if key:
                    await idempotency.store(conn, principal.subject, key, status, body)
                audited = await _audit_within(conn, ctx, request, status)
            request.state.audited = audited  # only once committed: a rolled-back row is written again
            media = "application/problem+json" if status >= 400 else None
            return JSONResponse(body, status, media_type=media)
        except ConcurrencyError as exc:
            if attempt == attempts - 1:
                raise Problem(409, "Conflict", f"{exc}; retry the request") from None
    raise AssertionError("unreachable")
