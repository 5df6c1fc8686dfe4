"""Offline re-run of a published draw: from the frame file and the draw's verification kit only.

A resident-design stage's kit (``"kind": "resident-stage"``) is re-run by ``verify_stage`` from its stage
frame file; everything below is the frame design's.

The kit (``GET /v1/draws/{id}/verification``, ministry-admin or auditor) holds the revealed seed,
its commitment, the campaign's pseudonym salt, the approved plan, the agencies' level and area, and
the published units. The frame file is the one the province uploaded. Nothing here talks to a
server: anyone holding both can check that the sample is exactly what the seed selects.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sipas_sampling.application.frames import read_rows
from sipas_sampling.domain.allocation import SamplePlan, StratumPlan
from sipas_sampling.domain.digest import frame_digest
from sipas_sampling.domain.draw import ReservePolicy, draw_sample
from sipas_sampling.domain.frame import FrameRow, FrameRules, Window, validate_row
from sipas_sampling.domain.strata import Stratification, label


@dataclass(frozen=True)
class Verdict:
    ok: bool
    problems: list[str]
    units_checked: int
    notes: list[str] = field(default_factory=list)


def frame_rows(frame_file: Path, window: Window | None = None) -> list[FrameRow]:
    """The rows of a frame file the upload kept: well-formed, each dossier once, completed within ``window``
    (the campaign's frame window; without it every date is taken). Agencies were checked at upload."""
    rules = FrameRules(window or Window(dt.date.min, dt.date.max), lambda _code, _day: True)
    seen: set[str] = set()
    rows = []
    with frame_file.open("rb") as f:
        for _line, raw in read_rows(f, frame_file.name):
            check = validate_row(raw, rules, seen)
            if check.row is not None:
                rows.append(check.row)
    return rows


def verify(frame_file: Path, kit: Mapping[str, Any], window: Window | None = None) -> Verdict:
    if kit.get("kind") == "resident-stage":
        from sipas_cli.verify_stage import verify_stage

        return verify_stage(frame_file, kit)
    problems: list[str] = []
    if hashlib.sha256(kit["seed"].encode()).hexdigest() != kit["seed_commitment"]:
        problems.append("the revealed seed does not hash to the published commitment")
    rows = frame_rows(frame_file, window)
    digest = frame_digest(rows)
    plan_body = kit["plan"]
    if digest != plan_body["frame_digest"]:
        problems.append(f"the frame file's digest is {digest}; the draw was made from {plan_body['frame_digest']}")
        return Verdict(False, problems, 0)
    strata = tuple(StratumPlan(tuple(s["key"]), s["population"], s["sample"],
                               Decimal(s["margin"]) if s["margin"] is not None else None) for s in plan_body["strata"])
    plan = SamplePlan(tuple(plan_body["dimensions"]), strata, None)
    agencies = kit["agencies"]
    dims = list(plan_body["dimensions"])
    attributes = [d for d in dims if d in ("agency_code", "service_field")]
    derived = {d: (lambda r, d=d: agencies[r.agency_code][d] or "") for d in dims if d in ("level", "area")}
    published: dict[str, list[str]] = {}
    reserves: dict[str, list[str]] = {}
    for u in kit["units"]:
        (published if u["role"] == "selected" else reserves).setdefault(u["stratum"], []).append(u["unit_id"])
    most = max((len(v) for v in reserves.values()), default=0)
    rerun = draw_sample(rows, plan, Stratification.of(*attributes, **derived), seed=kit["seed"],
                        campaign_salt=bytes.fromhex(kit["campaign_salt"]), reserves=ReservePolicy(count=most))
    checked = 0
    for stratum in rerun.strata:
        name = label(stratum.key)
        mine = sorted(u.unit_id for u in stratum.selected)
        if mine != sorted(published.get(name, [])):
            problems.append(f"stratum {name}: the published sample differs from the re-run")
        theirs = [u for u in kit["units"] if u["stratum"] == name and u["role"] == "reserve"]
        order = [u["unit_id"] for u in sorted(theirs, key=lambda u: u["rank"])]
        if [u.unit_id for u in stratum.reserves[:len(order)]] != order:
            problems.append(f"stratum {name}: the published reserves differ from the re-run")
        checked += len(mine)
    return Verdict(not problems, problems, checked)
