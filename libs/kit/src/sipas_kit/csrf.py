"""CSRF protection for the server-rendered forms (ballots' respondent page and clerk pages).

Every form that posts carries a hidden field ``csrf_token`` made when the page is rendered:

    <issued, unix seconds in hex>.<HMAC-SHA256(secret, "<form>\\n<binding>\\n<issued>") in hex>

``form`` names the form (``ballot``, ``clerk-key``, ``clerk-dispute:<code>``) and ``binding`` ties the
token to whoever the page was made for: the clerk's session (a SHA-256 of the session cookie) or, on
the respondent page, which has no session, the ballot code the page is for. A post is refused with a
403 unless its token was made by this service for this form and binding and is younger than
``csrf_max_age``; and a post whose ``Origin`` (or, without one, ``Referer``) names another host is
refused whatever its token. Our pages send no referrer (``Referrer-Policy: no-referrer``), so browsers
say ``Origin: null`` on their posts: ``null`` and an absent header leave the decision to the token.

The secret is the setting ``csrf_secret`` (``SIPAS_<SERVICE>_CSRF_SECRET``); it must be the same on
every replica. Without it each process makes a random one at start: forms then only post back to the
process that rendered them and a restart voids open forms (fine for one process, as ``sipas up`` runs).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from html import unescape
from urllib.parse import urlsplit

import structlog
from fastapi import Request

from sipas_kit.problems import Problem

log = structlog.get_logger(__name__)
FIELD = "csrf_token"
DEFAULT_MAX_AGE = 12 * 3600
_TOKEN = re.compile(r'name="csrf_token"\s+value="([^"]*)"')


class CsrfRefused(Problem):
    """403: the post did not come from this service's own form (the reason is the detail)."""

    def __init__(self, reason: str) -> None:
        super().__init__(403, "Forbidden", reason, type_="https://sipas.gov.vn/problems/csrf")
        self.reason = reason


def mint(secret: bytes, form: str, binding: str, issued: int) -> str:
    mac = hmac.new(secret, f"{form}\n{binding}\n{issued}".encode(), hashlib.sha256).hexdigest()
    return f"{issued:x}.{mac}"


def verify(secret: bytes, token: str | None, form: str, binding: str, now: float, max_age: float) -> str | None:
    """None if ``token`` is good for this form and binding; otherwise why not."""
    if not token:
        return "the form carries no CSRF token: send it from the page itself"
    issued_hex, _, _ = token.partition(".")
    try:
        issued = int(issued_hex, 16)
    except ValueError:
        return "the form's CSRF token is not valid for this form"
    if not hmac.compare_digest(token, mint(secret, form, binding, issued)):
        return "the form's CSRF token is not valid for this form"
    if now - issued > max_age:
        return "the form has expired: open the page again and send it from there"
    return None


def session_binding_of(session: str) -> str:
    """What a signed-in page's tokens are bound to: the session cookie's value, hashed."""
    return hashlib.sha256(session.encode()).hexdigest()


def session_binding(request: Request, cookie: str) -> str:
    return session_binding_of(request.cookies.get(cookie, ""))


def _secret(request: Request) -> bytes:
    state = request.app.state
    found: bytes | None = getattr(state, "csrf_secret", None)
    if found is None:
        ctx = getattr(state, "ctx", None)
        configured = getattr(getattr(ctx, "settings", None), "csrf_secret", None)
        if configured is not None:
            found = configured.get_secret_value().encode()
        else:
            log.warning("csrf.secret_per_process", hint="set csrf_secret so that every replica accepts every form")
            found = secrets.token_bytes(32)
        state.csrf_secret = found
    return found


def _max_age(request: Request) -> float:
    ctx = getattr(request.app.state, "ctx", None)
    return float(getattr(getattr(ctx, "settings", None), "csrf_max_age", DEFAULT_MAX_AGE))


def issue(request: Request, form: str, binding: str) -> str:
    """A token for a form rendered now."""
    return mint(_secret(request), form, binding, int(time.time()))


def _own_hosts(request: Request) -> set[str]:
    hosts = {request.url.netloc.lower()}
    base = getattr(getattr(getattr(request.app.state, "ctx", None), "settings", None), "public_base_url", None)
    if base:
        hosts.add(urlsplit(str(base)).netloc.lower())
    return hosts


def foreign_origin(request: Request) -> str | None:
    """The other site a post says it came from (``Origin``, else ``Referer``), or None."""
    origin = request.headers.get("origin")
    said = origin if origin and origin != "null" else None if origin else request.headers.get("referer")
    if not said:
        return None
    host = urlsplit(said).netloc.lower()
    return None if host in _own_hosts(request) else (host or said)


def check(request: Request, fields: Mapping[str, Sequence[str]], form: str, binding: str) -> None:
    """Refuse (403) a post that is not from this service's own ``form`` for ``binding``."""
    other = foreign_origin(request)
    if other is not None:
        raise CsrfRefused(f"a form of this service cannot be sent from another site ({other})")
    sent = fields.get(FIELD) or [""]
    reason = verify(_secret(request), sent[-1], form, binding, time.time(), _max_age(request))
    if reason is not None:
        log.info("csrf.refused", form=form.split(":", 1)[0], reason=reason)
        raise CsrfRefused(reason)


def token_in(html: str) -> str | None:
    """The token of the (first) form in a page, as a browser would send it back."""
    found = _TOKEN.search(html)
    return unescape(found.group(1)) if found else None
