"""The demo's people and how they call the platform: public HTTP, one signed-in person per request.

Tokens come from the local development identity provider (``.sipas/keys``), one subject per person, so
every event the round leaves behind names who did it. Nobody here reads a database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from sipas_kit.auth import DevIdentity, Role

T = TypeVar("T")


class DemoError(RuntimeError):
    """A step of the round could not be done; the message says which call answered what."""


@dataclass(frozen=True)
class Person:
    subject: str
    role: Role
    province: str | None = None


# The ministry's people (Bộ Nội vụ, Vụ Cải cách hành chính) and its national data-entry team. A national
# round is the ministry's: provincial roles cannot act on a campaign without a province.
ORGANISER = Person("pham.thu.ha@moha.gov.vn", Role.MINISTRY_ADMIN)
DRAFTER = Person("nguyen.thi.lan@moha.gov.vn", Role.MINISTRY_ADMIN)
APPROVER = Person("tran.van.minh@moha.gov.vn", Role.MINISTRY_ADMIN)
INSPECTOR = Person("le.quang.huy@moha.gov.vn", Role.MINISTRY_ADMIN)
ADJUDICATOR = Person("do.thi.mai@moha.gov.vn", Role.MINISTRY_ADMIN)
CLERKS = tuple(Person(f"nhaplieu.0{n}@moha.gov.vn", Role.MINISTRY_ADMIN) for n in (1, 2, 3))
VNPOST = Person("service:vnpost-collection", Role.SERVICE)      # uploads enumerators' keyed batches
KIOSKS = Person("service:dvc-kiosks", Role.SERVICE)             # the one-stop shops' rating kiosks


def operator(province: str) -> Person:
    """The province's Department of Home Affairs (Sở Nội vụ)."""
    return Person(f"sonoivu.{province}@demo.gov.vn", Role.PROVINCE_OPERATOR, province)


class Api:
    def __init__(self, urls: dict[str, str], identity: DevIdentity, timeout: float = 300.0) -> None:
        self.urls, self.identity = urls, identity
        self.http = httpx.Client(timeout=timeout)
        self._tokens: dict[Person, str] = {}

    def close(self) -> None:
        self.http.close()

    def token(self, who: Person) -> str:
        if who not in self._tokens:
            self._tokens[who] = self.identity.mint(who.subject, who.role, who.province, ttl=4 * 3600)
        return self._tokens[who]

    def auth(self, who: Person | None) -> dict[str, str]:
        return {} if who is None else {"Authorization": f"Bearer {self.token(who)}"}

    def call(self, method: str, service: str, path: str, who: Person | None, *, ok: tuple[int, ...] = (200, 201),
             headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
        r = self.http.request(method, self.urls[service] + path, headers=self.auth(who) | (headers or {}), **kw)
        if r.status_code not in ok:
            raise DemoError(f"{method} {service} {path} answered {r.status_code}: {problem(r)}")
        return r

    def get(self, service: str, path: str, who: Person | None, **kw: Any) -> Any:
        return self.call("GET", service, path, who, **kw).json()

    def post(self, service: str, path: str, who: Person | None, body: Any = None, **kw: Any) -> Any:
        return self.call("POST", service, path, who, json=body, **kw).json()

    def pages(self, service: str, path: str, who: Person | None, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a cursor-paged list."""
        params["limit"] = 500
        while True:
            page = self.get(service, path, who, params=params)
            yield from page["items"]
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]


def problem(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:300]
    if isinstance(body, dict):
        errors = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in body.get("errors") or [])
        return " — ".join(str(x) for x in (body.get("title"), body.get("detail"), errors) if x)
    return str(body)[:300]


def wait_until(check: Callable[[], T | None], what: str, timeout: float = 180.0, every: float = 0.5) -> T:
    """Poll ``check`` until it returns something truthy: the services learn of each other's events
    asynchronously, so a person who just acted may have to wait a moment before the next step."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise DemoError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)
