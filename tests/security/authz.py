"""The authorisation matrix: every route of a service's OpenAPI called by every role, from a province
of its own (79) on its own province's resources, on another province's (01) and on national ones.

A service's ``World`` names the real ids its seeding created (per province), the bodies a route needs
to look valid, the routes anyone may call without a token, and the routes that cannot be exercised
meaningfully, each with its reason. ``run_matrix`` calls everything, in an order where no legitimate
write has touched province 01 before its cross-province probes run, and returns one row per call.
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi.routing import APIRoute, iter_route_contexts

ROOT = Path(__file__).resolve().parents[2]
ARTEFACTS = ROOT / "test-artefacts" / "security"
HOME, AWAY = "79", "01"
"""Provincial callers belong to HOME; AWAY's resources are the ones they must never reach."""
PROVINCIAL = ("province-operator", "clerk", "enumerator")
NATIONAL = ("auditor", "partner", "service", "ministry-admin")  # the admin last: its writes change the world
ANONYMOUS = "anonymous"
PROBLEM = "application/problem+json"
SCOPE_KEY = {"own": HOME, "other": AWAY, "mixed": AWAY, "national": "national", "nation": AWAY, "none": AWAY}
"""Scopes: a provincial caller on its own province, on another's, on its own resource with another
province's ids in the body or query ("mixed"), on a national resource; a national role (or no token
at all) on AWAY's resources."""
FILTERS = {"province"}
PATTERNS = {
    r"^[0-9]{2}$": "79", r"^[0-9a-f]{64}$": "0" * 64, r"^[0-9a-f]+$": "ab" * 16, r"^[^\x00]*$": None,
    r"^[0-9]+(\.[0-9]+)?$": "0.2", r"^[a-z0-9][a-z0-9._-]*$": "matrix", r"^[A-Za-z0-9._-]+$": "MATRIX",
}

Values = dict[str, dict[str, Any]]
"""name -> {"01": …, "79": …, "national": …} for scoped values, or {"*": …} for one that belongs nowhere."""


class Pick:
    """Values for one call: AWAY's, HOME's or the national ones; remembers which provinces it used."""

    def __init__(self, values: Values, key: str) -> None:
        self.values, self.key, self.used = values, key, set[str]()

    def quietly(self) -> Pick:
        """The same values, without counting them as the call's target (a list's filter, not a resource)."""
        return Pick(self.values, self.key)

    def known(self, name: str) -> bool:
        return name in self.values

    def __call__(self, name: str) -> Any:
        options = self.values[name]
        for key in (self.key, HOME, "*"):  # a national probe keeps its other values at home
            if key in options:
                if key != "*":
                    self.used.add(key)
                return options[key]
        raise KeyError(f"{name} has no value for {self.key}")


@dataclass
class Upload:
    """A route whose body is a file (CSV, XLSX), not JSON."""

    content: Callable[[Pick], bytes]
    media_type: str = "text/csv"


@dataclass
class World:
    values: Values
    bodies: dict[str, Callable[[Pick], Any]] = field(default_factory=dict)
    uploads: dict[str, Upload] = field(default_factory=dict)
    overrides: dict[str, Values] = field(default_factory=dict)
    """Per route, values that differ from the service-wide ones (a ballot in the state that route needs)."""
    public: dict[str, str] = field(default_factory=dict)
    """Routes anyone may call without a token, and why."""
    shallow: dict[str, str] = field(default_factory=dict)
    """Routes called like every other but that cannot reach their success path here, and why."""
    markers: set[str] = field(default_factory=set)
    """AWAY's ids and names: no HOME caller may see one in a successful answer."""
    batches: dict[str, Callable[[Any], int]] = field(default_factory=dict)
    """Routes answering 2xx with a report of rows, each accepted or not: how many were accepted."""
    facts: dict[str, Any] = field(default_factory=dict)
    """Other ids of the world that other tests use (a published release, say)."""
    outsiders: dict[str, str] = field(default_factory=dict)
    """Roles that may read nothing of this service but its reference data (``/v1/reference/…``), and why."""


@dataclass(frozen=True)
class Row:
    route: str
    role: str
    scope: str
    target: str
    status: int
    content_type: str
    leaked: str = ""
    accepted: int | None = None
    """For a batch route, the rows it accepted: a 2xx that accepted none changed nothing."""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and self.accepted != 0


@dataclass(frozen=True)
class Call:
    route: str
    role: str
    scope: str
    method: str
    path: str
    params: dict[str, Any]
    body: Any
    upload: Upload | None
    pick: Pick


def key_of(method: str, path: str) -> str:
    return f"{method.upper()} {path}"


def routes_of(app: Any) -> list[Any]:
    """Every route of the app, included routers' too (FastAPI keeps those behind ``_IncludedRouter``)."""
    return list(iter_route_contexts(app.routes))


def declared_roles(app: Any) -> dict[str, frozenset[str]]:
    """Routes guarded by ``require_roles(...)``, with the roles they allow (read from the dependency)."""
    found: dict[str, frozenset[str]] = {}
    for route in routes_of(app):
        if not isinstance(route.original_route, APIRoute) or route.dependant is None:
            continue
        stack = [route.dependant]
        while stack:
            dep = stack.pop()
            if dep.call is not None and getattr(dep.call, "__qualname__", "").startswith("require_roles."):
                allowed = inspect.getclosurevars(dep.call).nonlocals["allowed"]
                for method in route.methods:
                    found[key_of(method, route.path)] = frozenset(str(r) for r in allowed)
                break
            stack.extend(dep.dependencies)
    return found


def _resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def example(schema: dict[str, Any], doc: dict[str, Any], pick: Pick, name: str | None = None) -> Any:
    """A small valid-looking value for a JSON schema; names the world knows take the world's value."""
    if name is not None and pick.known(name):
        return pick(name)
    schema = _resolve(schema, doc)
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if _resolve(s, doc).get("type") != "null"]
            return example(options[0], doc, pick) if options else None
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        required = set(schema.get("required", []))
        return {k: example(v, doc, pick, k) for k, v in schema.get("properties", {}).items()
                if k in required or pick.known(k)}
    if kind == "array":
        return [example(schema.get("items", {}), doc, pick) for _ in range(max(schema.get("minItems", 1), 1))]
    if kind == "string":
        return _string(schema)
    if kind in ("integer", "number"):
        return schema.get("default", schema.get("minimum", 1))
    if kind == "boolean":
        return False
    return None


def _string(schema: dict[str, Any]) -> str:
    if "default" in schema and schema["default"] is not None:
        return str(schema["default"])
    fmt = schema.get("format")
    if fmt == "date":
        return "2026-07-01"
    if fmt == "date-time":
        return "2026-07-01T00:00:00+00:00"
    if fmt == "uuid":
        return str(uuid.uuid4())
    if PATTERNS.get(schema.get("pattern", "")):
        return str(PATTERNS[schema["pattern"]])
    size = max(schema.get("minLength", 0), 12)
    return ("kiểm tra phân quyền " * 20)[:min(size, schema.get("maxLength", size))]


def calls_for(doc: dict[str, Any], world: World) -> list[Call]:
    """Every route, by every role, in every scope, in the order they must run (cross-province probes first)."""
    routes = [(m.upper(), path, op) for path, ops in doc["paths"].items() for m, op in ops.items()]
    passes: list[tuple[str, str]] = [(ANONYMOUS, "none")]
    passes += [(role, scope) for scope in ("other", "mixed", "national") for role in PROVINCIAL]
    passes += [(role, "own") for role in PROVINCIAL] + [(role, "nation") for role in NATIONAL]
    out = []
    for role, scope in passes:
        for method, path, op in routes:
            call = _call(doc, world, role, scope, method, path, op)
            if scope == "national" and "national" not in call.pick.used:
                continue  # no national resource behind this route: the own/other probes cover it
            if scope == "mixed" and not call.pick.used >= {HOME, AWAY}:
                continue  # no id of another province besides its own: the other probes cover it
            out.append(call)
    return out


def _call(doc: dict[str, Any], world: World, role: str, scope: str, method: str, path: str,
          op: dict[str, Any]) -> Call:
    route = key_of(method, path)
    values = world.values | world.overrides.get(route, {})
    pick = Pick(values, SCOPE_KEY[scope])
    at = Pick(values, HOME) if scope == "mixed" else pick  # a mixed probe: the path names its own resource
    params: dict[str, Any] = {}
    filled = path
    for p in op.get("parameters", []):
        if p["in"] == "path":
            filled = filled.replace("{" + p["name"] + "}", str(example(p["schema"], doc, at, p["name"])))
        elif p["in"] == "query" and (p.get("required") or pick.known(p["name"])):
            # ?province= narrows a list, whose answer the markers judge; an id in the query is a resource.
            source = pick.quietly() if p["name"] in FILTERS else pick
            params[p["name"]] = example(p["schema"], doc, source, p["name"])
    upload = world.uploads.get(route)
    body: Any = None
    if route in world.bodies:
        body = world.bodies[route](pick)
    elif "requestBody" in op:
        schema = next(iter(op["requestBody"]["content"].values()))["schema"]
        body = example(schema, doc, pick)
    if upload is not None:
        body = upload.content(pick)
    pick.used |= at.used
    return Call(route, role, scope, method, filled, params, body, upload, pick)


async def run_matrix(api: Any, world: World) -> list[Row]:
    # A client of our own that answers an unhandled error with the app's 500 instead of raising it here.
    transport = httpx.ASGITransport(app=api.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{api.service}") as client:
        return [await _run(api, client, world, call) for call in calls_for(api.app.openapi(), world)]


async def _run(api: Any, client: httpx.AsyncClient, world: World, call: Call) -> Row:
    headers = {} if call.role == ANONYMOUS else api.auth(call.role, HOME if call.role in PROVINCIAL else None)
    if call.upload is not None:
        kwargs: dict[str, Any] = {"content": call.body, "headers": headers | {"Content-Type": call.upload.media_type}}
    elif call.body is not None:
        kwargs = {"json": call.body, "headers": headers}
    else:
        kwargs = {"headers": headers}
    response = await client.request(call.method, call.path, params=call.params, **kwargs)
    target = ",".join(sorted(call.pick.used)) or "-"
    leaked, accepted = "", None
    if call.route in world.batches and 200 <= response.status_code < 300:
        accepted = world.batches[call.route](response.json())
    if call.role in PROVINCIAL and 200 <= response.status_code < 300:
        sent = json.dumps([call.path, call.params, call.body], default=str) if call.upload is None else call.path
        seen = response.content.decode("utf-8", errors="replace")
        leaked = " ".join(sorted(m for m in world.markers if m in seen and m not in sent))
    return Row(call.route, call.role, call.scope, target, response.status_code,
               response.headers.get("content-type", "").split(";")[0], leaked, accepted)


@dataclass
class Verdict:
    server_errors: list[Row]
    not_problem_json: list[Row]
    cross_province: list[Row]
    outsider_reads: list[Row]
    wrong_refusals: list[str]
    unexercised: list[str]
    probes: int
    """Calls by a provincial role of 79 that name a resource of 01."""
    live_probes: int
    """Of those, the ones on a route the same role could use on its own province's resource."""


def judge(rows: Iterable[Row], roles: dict[str, frozenset[str]], world: World) -> Verdict:
    rows = list(rows)
    cross = [r for r in rows if r.role in PROVINCIAL and ((AWAY in r.target.split(",") and r.ok) or r.leaked)]
    outsiders = [r for r in rows if r.role in world.outsiders and r.ok and not r.route.startswith("GET /v1/reference/")]
    wrong = []
    for r in rows:
        if r.role == ANONYMOUS and r.route not in world.public and r.status != 401:
            wrong.append(f"{r.route} without a token answered {r.status}, not 401")
        allowed = roles.get(r.route)
        if allowed is not None and r.role not in allowed and r.role != ANONYMOUS and r.status != 403:
            wrong.append(f"{r.route} is for {sorted(allowed)}; a {r.role} got {r.status}, not 403")
    owner_ok = {r.route for r in rows if r.role in PROVINCIAL and r.scope == "own" and r.ok}
    probes = [r for r in rows if r.role in PROVINCIAL and AWAY in r.target.split(",")]
    live = sum(1 for r in probes if r.route in owner_ok)
    touched = {r.route for r in rows if r.ok}
    unexercised = sorted({r.route for r in rows} - touched - set(world.shallow))
    return Verdict(server_errors=[r for r in rows if r.status >= 500],
                   not_problem_json=[r for r in rows if 400 <= r.status < 500 and r.content_type != PROBLEM],
                   cross_province=cross, outsider_reads=outsiders, wrong_refusals=wrong, unexercised=unexercised,
                   probes=len(probes), live_probes=live)


def write_table(service: str, rows: list[Row]) -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"authorisation-matrix-{service}.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["service", "route", "role", "scope", "target", "status", "content_type", "accepted_rows",
                         "leaked"])
        writer.writerows([service, r.route, r.role, r.scope, r.target, r.status, r.content_type,
                          "" if r.accepted is None else r.accepted, r.leaked] for r in rows)
    return path


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
