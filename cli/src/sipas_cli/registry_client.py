"""Operator tasks against the registry's public API: load the province maps and the built-ins, import.

Everything goes through the same HTTP commands an operator would use, with deterministic ids and
Idempotency-Keys, so running a loader twice changes nothing the second time.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REFERENCE = Path(__file__).resolve().parents[3] / "data" / "reference"
NAMESPACE = uuid.UUID("5c0b6a3e-7d0e-4a57-9a8f-5195a5000001")
MAP63_FROM, MAP63_BASIS = "2008-08-01", "Nghị quyết 15/2008/QH12"
MAP34_FROM, MAP34_BASIS = "2025-07-01", "Nghị quyết 202/2025/QH15"


def builtin_definition(kind: str, ident: str, folder: Path = REFERENCE) -> dict[str, Any]:
    """The definition of a built-in ``instrument`` or ``scheme`` as shipped in ``data/reference``."""
    doc = json.loads((folder / f"{kind}s" / f"{ident}.json").read_text(encoding="utf-8"))
    return doc["definition"]  # type: ignore[no-any-return]


def province_id(code: str, valid_from: str) -> str:
    """The id a loaded province gets: the same on every machine and every run."""
    return str(uuid.uuid5(NAMESPACE, f"province:{code}:{valid_from}"))


class RegistryRefused(RuntimeError):
    def __init__(self, what: str, response: httpx.Response) -> None:
        super().__init__(f"{what}: {response.status_code} {response.text[:500]}")
        self.response = response


@dataclass
class Tally:
    created: int = 0
    unchanged: int = 0
    notes: list[str] = field(default_factory=list)


class RegistryClient:
    def __init__(self, base_url: str, token: str, timeout: float = 120.0) -> None:
        self.http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, path: str, body: Any, key: str, what: str) -> bool:
        """True when this call created something, False when it had been done before."""
        r = self.http.post(path, json=body, headers={"Idempotency-Key": key})
        if r.status_code in (200, 201):
            return r.headers.get("Idempotent-Replayed") != "true"
        if r.status_code == 409 and r.json().get("title") in ("Conflict", "Immutable"):
            return False  # loaded earlier under another key (e.g. by hand): nothing to do
        raise RegistryRefused(what, r)

    # ---- the province maps ------------------------------------------------------------------
    def load_maps(self, folder: Path = REFERENCE) -> Tally:
        tally = Tally()
        old = list(_rows(folder / "provinces-63.csv"))
        names = {r["code"]: r["name_vi"] for r in old}
        for r in old:
            body = {"agency_id": province_id(r["code"], MAP63_FROM), "code": r["code"], "name": r["name_vi"],
                    "level": "province", "province": r["code"], "valid_from": MAP63_FROM, "legal_basis": MAP63_BASIS}
            self._count(tally, self._post("/v1/agencies", body, f"map63:{r['code']}", f"province {r['code']}"))
        for r in _rows(folder / "provinces-34.csv"):
            code, preds = r["code"], r["predecessor_codes"].split()
            if preds == [code]:
                if names[code] == r["name_vi"]:
                    tally.unchanged += 1
                    continue
                if self._exists(province_id(code, MAP63_FROM), name=r["name_vi"]):
                    tally.unchanged += 1
                    continue
                body = {"name": r["name_vi"], "effective_date": MAP34_FROM, "legal_basis": MAP34_BASIS}
                path = f"/v1/agencies/{province_id(code, MAP63_FROM)}/rename"
                self._count(tally, self._post(path, body, f"map34:rename:{code}", f"rename {code}"))
                continue
            if self._exists(province_id(code, MAP34_FROM)):
                tally.unchanged += 1
                continue
            merge: dict[str, Any] = {
                "predecessor_ids": [province_id(p, MAP63_FROM) for p in preds],
                "successor": {"agency_id": province_id(code, MAP34_FROM), "code": code, "name": r["name_vi"],
                              "level": "province", "province": code, "valid_from": MAP34_FROM},
                "effective_date": MAP34_FROM, "legal_basis": MAP34_BASIS,
            }
            self._count(tally, self._post("/v1/reorganisations/merge", merge, f"map34:merge:{code}", f"merge {code}"))
        return tally

    def _exists(self, agency_id: str, name: str | None = None) -> bool:
        """Is the unit there (and, if ``name`` is given, already so named)? Makes re-runs by anyone no-ops."""
        r = self.http.get(f"/v1/agencies/{agency_id}")
        return r.status_code == 200 and (name is None or r.json()["name"] == name)

    # ---- built-in instruments and schemes -----------------------------------------------------
    def load_builtins(self, folder: Path = REFERENCE) -> Tally:
        tally = Tally()
        for kind, plural in (("instrument", "instruments"), ("scheme", "schemes")):
            for path in sorted((folder / plural).glob("*.json")):
                doc = json.loads(path.read_text(encoding="utf-8"))
                ident = doc[f"{kind}_id"]
                existing = self.http.get(f"/v1/{plural}/{ident}/versions/1")
                if existing.status_code == 200 and existing.json()["status"] == "published":
                    tally.unchanged += 1
                    continue
                if existing.status_code == 404:
                    self._post(f"/v1/{plural}", doc, f"builtin:{kind}:{ident}", f"{kind} {ident}")
                self._post(f"/v1/{plural}/{ident}/versions/1/publish", None, f"builtin:{kind}:{ident}:publish",
                           f"publish {kind} {ident}")
                tally.created += 1
        return tally

    # ---- imports and queries -----------------------------------------------------------------
    def import_file(self, path: Path) -> httpx.Response:
        media = ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
                 if path.suffix.lower() == ".xlsx" else "text/csv")
        return self.http.post("/v1/agency-imports", params={"filename": path.name}, content=path.read_bytes(),
                              headers={"Content-Type": media})

    def as_of(self, day: str, **filters: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"as_of": day, "limit": 500} | {k: v for k, v in filters.items() if v}
        while True:
            r = self.http.get("/v1/agencies", params=params)
            if r.status_code != 200:
                raise RegistryRefused("as_of listing", r)
            page = r.json()
            items += page["items"]
            if not page["next_cursor"]:
                return items
            params["cursor"] = page["next_cursor"]

    def crosswalk(self, agency_id: str) -> dict[str, Any]:
        r = self.http.get(f"/v1/agencies/{agency_id}/crosswalk")
        if r.status_code != 200:
            raise RegistryRefused("crosswalk", r)
        return r.json()  # type: ignore[no-any-return]

    @staticmethod
    def _count(tally: Tally, created: bool) -> None:
        if created:
            tally.created += 1
        else:
            tally.unchanged += 1


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        yield from csv.DictReader(f)
