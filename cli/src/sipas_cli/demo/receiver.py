"""A partner's webhook endpoint, as small as one can be: it keeps every delivery and checks its HMAC.

The check is the one ``docs/publishing.md`` gives partners, written here again from the documentation
rather than imported from the publishing service, so a passing check means a partner following the
docs would accept the delivery: ``Sipas-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``,
with the timestamp inside a 300-second window.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WINDOW = 300


@dataclass
class Delivery:
    event_id: str
    event_type: str
    body: dict[str, Any]
    signature_valid: bool
    raw: bytes = b""
    signature: str = ""


def signature_valid(secret: str, header: str, body: bytes, now: float, window: int = WINDOW) -> bool:
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        stamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - stamp) > window:
        return False
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


@dataclass
class Receiver:
    """``start()`` listens on 127.0.0.1 (a free port); set ``secret`` once the subscription is made."""

    secret: str | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/sipas/events"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.record(body, self.headers.get("Sipas-Signature", ""),
                                self.headers.get("Sipas-Event-Id", ""))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="demo-webhook", daemon=True).start()
        return self

    def record(self, body: bytes, signature: str, event_id: str) -> None:
        try:
            envelope = json.loads(body)
        except ValueError:
            envelope = {}
        valid = self.secret is not None and signature_valid(self.secret, signature, body, time.time())
        with self._lock:
            if any(d.event_id == event_id for d in self.deliveries):
                return  # at-least-once delivery: a partner drops repeats by event id
            self.deliveries.append(Delivery(event_id, str(envelope.get("type", "")), envelope, valid, body, signature))

    def find(self, release_id: str) -> Delivery | None:
        with self._lock:
            return next((d for d in self.deliveries if ".ReleasePublished." in d.event_type
                         and (d.body.get("data") or {}).get("release_id") == release_id), None)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
