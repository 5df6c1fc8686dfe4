"""The edge every service shares: size and depth limits, rate limits, security headers.

A pure ASGI middleware (it sees the body as it streams in, before any framework code):

- **Size**: a request body longer than ``max_body_bytes`` (JSON and forms) or ``max_upload_bytes``
  (CSV, XLSX and other files, which are streamed, never buffered) is refused with 413, whether the
  client declared its length or not.
- **Depth**: a JSON body nested deeper than ``json_max_depth`` is refused with 400 before it is parsed
  (deep nesting is how a small body exhausts a parser).
- **NUL**: text holding U+0000 (in the path, the query, a JSON string or a form) is refused with 422:
  PostgreSQL cannot store it, and every service would otherwise answer it with a 500.
- **Slow bodies**: a JSON or form body that stops arriving for ``body_timeout`` seconds (between two
  chunks, or before the first) is answered 408, so a client trickling a body cannot hold a request
  open for ever (uvicorn closes idle keep-alive connections after ``keep_alive_timeout``; streamed
  uploads and slow headers are the ingress's to time out: docs/security.md).
- **Rate**: path prefixes listed in ``rate_limits`` (``{"/b": "60/60"}``: 60 requests per 60 seconds)
  are limited per client address with a token bucket; over the limit is 429 with ``Retry-After``.
  The buckets are per process: behind N replicas the effective limit is N times higher (documented).
- **Headers**: every response gets ``X-Content-Type-Options``, ``Referrer-Policy`` and
  ``X-Frame-Options``; HTML responses also a strict ``Content-Security-Policy`` (no inline script; the
  clerk page's optional script is a file of its own; the pages work without JavaScript) and ``Cache-Control: no-store``.

Errors are RFC 9457 problem+json like every other error of the platform.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON, FORM = "application/json", "application/x-www-form-urlencoded"
FILE_TYPES = ("text/csv", "application/vnd.openxmlformats", "application/octet-stream", "multipart/form-data")
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY")]
HTML_HEADERS = [(b"content-security-policy", b"default-src 'none'; script-src 'self'; "
                 b"style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
                 b"frame-ancestors 'none'; base-uri 'none'"),
                (b"cache-control", b"no-store")]


class RequestTooLarge(Exception):
    """Raised from ``receive`` when a streamed body passes its limit; the app answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"this endpoint accepts at most {limit} bytes")
        self.limit = limit


def json_depth(body: bytes) -> int:
    """The nesting depth of a JSON text, counted without parsing it (brackets outside strings)."""
    return json_scan(body)[0]


def json_scan(body: bytes) -> tuple[int, bool]:
    """The nesting depth of a JSON text and whether a string of it holds ``\\u0000``, without parsing it."""
    depth = deepest = 0
    in_string = escaped = nul = False
    for i, byte in enumerate(body):
        if in_string:
            if escaped:
                escaped = False
                nul = nul or (byte == 0x75 and body[i + 1:i + 5] == b"0000")  # u0000
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x7B, 0x5B):  # { [
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x7D, 0x5D):
            depth -= 1
    return deepest, nul


def _nul_refused() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    return _problem(422, "Invalid request", "text may not contain NUL (U+0000)", "invalid-request")


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class RateLimits:
    """Token buckets per (path prefix, client address)."""

    limits: Mapping[str, tuple[int, float]]
    buckets: dict[tuple[str, str], _Bucket] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: Mapping[str, str]) -> RateLimits:
        limits = {}
        for prefix, rule in spec.items():
            count, _, seconds = rule.partition("/")
            limits[prefix] = (int(count), float(seconds or 60))
        return cls(limits)

    def check(self, path: str, client: str) -> float | None:
        """None if allowed; otherwise the seconds until a request would be."""
        prefix = next((p for p in sorted(self.limits, key=len, reverse=True) if path.startswith(p)), None)
        if prefix is None:
            return None
        capacity, period = self.limits[prefix]
        now = time.monotonic()
        bucket = self.buckets.setdefault((prefix, client), _Bucket(float(capacity), now))
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * capacity / period)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        if len(self.buckets) > 100_000:  # forget idle clients rather than grow without bound
            self.buckets = {k: b for k, b in self.buckets.items() if now - b.updated < period}
        return (1 - bucket.tokens) * period / capacity


def _problem(status: int, title: str, detail: str, kind: str, headers: list[tuple[bytes, bytes]] | None = None
             ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = json.dumps({"type": f"https://sipas.gov.vn/problems/{kind}", "title": title, "status": status,
                       "detail": detail}).encode()
    return status, [(b"content-type", b"application/problem+json"), *(headers or [])], body


class Edge:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_upload_bytes: int, json_max_depth: int,
                 rate_limits: Mapping[str, str], body_timeout: float = 30.0) -> None:
        self.app, self.max_body, self.max_upload, self.max_depth = app, max_body_bytes, max_upload_bytes, json_max_depth
        self.rates, self.body_timeout = RateLimits.parse(rate_limits), body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        client = (scope.get("client") or ("unknown", 0))[0]
        wait = self.rates.check(scope["path"], client)
        if wait is not None:
            await self._reply(send, *_problem(429, "Too many requests", f"slow down: retry in {wait:.0f} s",
                                              "rate-limited", [(b"retry-after", str(max(1, round(wait))).encode())]))
            return
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            await self._reply(send, *_nul_refused())
            return
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        limit = self.max_upload if media.startswith(FILE_TYPES) else self.max_body
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reply(send, *_problem(413, "Request too large", f"the body is {declared} bytes; this "
                                              f"endpoint accepts at most {limit}", "too-large"))
            return
        if media in (JSON, FORM) and scope["method"] in ("POST", "PUT", "PATCH"):
            body, more = b"", True
            while more:
                try:
                    message = await asyncio.wait_for(receive(), self.body_timeout)
                except TimeoutError:
                    await self._reply(send, *_problem(408, "Request timeout", f"the body stopped arriving for "
                                                      f"{self.body_timeout:g} s", "request-timeout"))
                    return
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > limit:
                    await self._reply(send, *_problem(413, "Request too large",
                                                      f"this endpoint accepts at most {limit} bytes", "too-large"))
                    return
            depth, nul = json_scan(body) if media == JSON else (0, b"%00" in body)
            if depth > self.max_depth:
                await self._reply(send, *_problem(400, "Bad request", f"JSON nested deeper than {self.max_depth} "
                                                  "levels", "too-deep"))
                return
            if nul:
                await self._reply(send, *_nul_refused())
                return
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if replayed:
                    return await receive()
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}

            receive = replay
        else:
            receive = self._counted(receive, limit)
        await self.app(scope, receive, self._headed(send))

    @staticmethod
    def _counted(receive: Receive, limit: int) -> Receive:
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise RequestTooLarge(limit)
            return message
        return counted

    @staticmethod
    def _headed(send: Send) -> Send:
        async def headed(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = [h for h in SECURITY_HEADERS if h[0] not in names]
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if content_type.startswith(b"text/html"):
                    extra += [h for h in HTML_HEADERS if h[0] not in names]
                message["headers"] = headers + extra
            await send(message)
        return headed

    @staticmethod
    async def _reply(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"content-length", str(len(body)).encode()), *SECURITY_HEADERS]})
        await send({"type": "http.response.body", "body": body})
