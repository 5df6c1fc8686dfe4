"""RFC 9457 problem details: every error says what is wrong, where, and why.

Domain exceptions carry no HTTP codes; the app maps them here. Validation errors list each field
by its path (``body.agency.code``) with a message, and a body that is not JSON is a 400.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException

from sipas_events.consumer import CONFLICTS
from sipas_kit.edge import RequestTooLarge

log = structlog.get_logger(__name__)
MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://sipas.gov.vn/problems/"


class Problem(Exception):
    """Raise from a route to answer with a problem document."""

    def __init__(
        self, status: int, title: str, detail: str | None = None, *, type_: str | None = None,
        errors: Sequence[Mapping[str, Any]] | None = None, headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail = status, title, detail
        self.type = type_ or TYPE_BASE + title.lower().replace(" ", "-")
        self.errors, self.headers, self.extra = list(errors or []), dict(headers or {}), extra

    def document(self, instance: str) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status, "instance": instance}
        if self.detail:
            doc["detail"] = self.detail
        if self.errors:
            doc["errors"] = self.errors
        return doc | self.extra


def problem_response(problem: Problem, request: Request) -> JSONResponse:
    doc = problem.document(request.url.path)
    cid = getattr(request.state, "correlation_id", None)
    if cid:
        doc["correlation_id"] = cid
    return JSONResponse(doc, status_code=problem.status, media_type=MEDIA_TYPE, headers=problem.headers)


# SQLSTATE classes of a database that is down, restarting or refusing connections: 08 connection exception,
# 57P operator intervention (admin/crash shutdown, cannot connect now), 53300 too many connections.
_UNAVAILABLE_STATES = ("08", "57P", "53300")
RETRY_AFTER_SECONDS = "2"


def unavailable(exc: BaseException) -> bool:
    """The database is down or restarting (not a bug, not the request's fault): answer 503, retry later.

    True for a connection the pool had to invalidate, for PostgreSQL's connection and shutdown SQLSTATEs, and
    for a socket error on the way (refused, reset) anywhere in the exception's chain."""
    return _in_chain(exc, _UNAVAILABLE_STATES, outage=True)


def lost_race(exc: BaseException) -> bool:
    """PostgreSQL ended the request's transaction to let a concurrent one through (a deadlock, a serialization
    failure, a lock not available: the consumers' ``CONFLICTS``; nothing of it was written): answer 503, retry."""
    return _in_chain(exc, CONFLICTS, outage=False)


def _in_chain(exc: BaseException, states: tuple[str, ...], outage: bool) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if outage and isinstance(current, (ConnectionError, TimeoutError)):
            return True
        if isinstance(current, DBAPIError):
            if outage and current.connection_invalidated:
                return True
            state = getattr(current.orig, "pgcode", None) or getattr(current.orig, "sqlstate", None) or ""
            if str(state).startswith(states):
                return True
        state = getattr(current, "sqlstate", None)
        if isinstance(state, str) and state.startswith(states):
            return True
        current = current.__cause__ or current.__context__
    return False


def field_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        out.append({"field": ".".join(loc), "message": err.get("msg", ""), "type": err.get("type", "")})
    return out


def install(app: FastAPI, domain_errors: Mapping[type[Exception], tuple[int, str]] | None = None) -> None:
    """Register handlers: ``Problem``, validation, HTTP errors, mapped domain errors, the rest."""
    mapping = dict(domain_errors or {})

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            detail = next(e.get("ctx", {}).get("error", "") for e in errors if e.get("type") == "json_invalid")
            return problem_response(Problem(400, "Malformed JSON", f"The request body is not valid JSON: {detail}"),
                                    request)
        fields = field_errors(errors)
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
        return problem_response(Problem(422, "Invalid request", summary, errors=fields), request)

    @app.exception_handler(RequestTooLarge)
    async def _too_large(request: Request, exc: RequestTooLarge) -> JSONResponse:
        return problem_response(Problem(413, "Request too large", str(exc),
                                        type_="https://sipas.gov.vn/problems/too-large"), request)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        title = {401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
                 413: "Payload too large", 415: "Unsupported media type"}.get(exc.status_code, "Error")
        detail = exc.detail if isinstance(exc.detail, str) else None
        return problem_response(Problem(exc.status_code, title, detail, headers=exc.headers), request)

    for exc_type, (status, title) in mapping.items():
        def _make(status: int, title: str):  # type: ignore[no-untyped-def]
            async def _domain(request: Request, exc: Exception) -> JSONResponse:
                extra = getattr(exc, "problem_extra", {}) or {}
                return problem_response(Problem(status, title, str(exc), **extra), request)
            return _domain
        app.add_exception_handler(exc_type, _make(status, title))

    async def _infrastructure(request: Request, exc: Exception) -> JSONResponse:
        # Registered per class, so Starlette answers here instead of in its outermost middleware, which
        # would re-raise to the server after the 500 (and on some paths drop the connection unanswered).
        if unavailable(exc):
            event, detail = "http.unavailable", (
                "The database is unavailable or restarting. Retry shortly: with the same Idempotency-Key, a request "
                "that did commit is answered as it was the first time.")
        elif lost_race(exc):
            event, detail = "http.lost_race", ("The request met a concurrent change to the same data and was undone, "
                                               "nothing of it kept. Retry shortly.")
        else:
            return await _unexpected(request, exc)
        log.warning(event, path=request.url.path, error=repr(exc)[:300])
        return problem_response(Problem(503, "Service unavailable", detail,
                                        headers={"Retry-After": RETRY_AFTER_SECONDS}), request)

    for infrastructure in (DBAPIError, OSError):
        app.add_exception_handler(infrastructure, _infrastructure)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("http.unhandled", path=request.url.path)
        return problem_response(Problem(500, "Internal error", "An unexpected error occurred; it has been logged "
                                        "with this request's correlation id."), request)
