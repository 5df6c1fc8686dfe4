"""Offline re-run of one resident-design stage draw: from its stage frame file and its verification kit only.

The kit (``GET /v1/draws/{id}/verification`` on a stage draw, ministry-admin or auditor) holds the revealed
seed and its commitment, the stage digest the commitment pinned, the sizes the round pinned, each parent's
digest and inclusion probability, and what the stage selected (households by unit id only, with the
campaign's pseudonym salt to recompute them). The stage frame file is the one the province uploaded.

The file is read and checked row by row exactly as the upload did (the same reader and row checks; the kit
supplies what the upload took from the database: the registry's communes, or the parents the stage before
selected). Each parent is then digested and re-drawn on its own — its random stream depends on its own
digest only — so an edited row is reported for the parent it belongs to while every other parent is still
checked unit by unit.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from sipas_cli.verify_draw import Verdict
from sipas_sampling.application.frames import read_rows
from sipas_sampling.application.stage_frames import COLUMNS
from sipas_sampling.domain.errors import SamplingError
from sipas_sampling.domain.listing import check_commune, check_household, check_village
from sipas_sampling.domain.resident import (
    RESIDENT_ALGORITHM_VERSION,
    Area,
    StageDraw,
    StageUnit,
    area_digest,
    draw_communes,
    draw_households,
    draw_villages,
    fraction_text,
    listing_digest,
    stage_digest,
)

PARENT = {"communes": "province", "villages": "commune", "households": "village"}


@dataclass
class _StageFile:
    members: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    """Parent code -> its areas, or its household ids, as the upload kept them."""
    dropped: int = 0


def verify_stage(frame_file: Path, kit: Mapping[str, Any]) -> Verdict:
    stage, problems = kit["stage"], list[str]()
    if hashlib.sha256(kit["seed"].encode()).hexdigest() != kit["seed_commitment"]:
        problems.append("the revealed seed does not hash to the published commitment")
    if kit["algorithm_version"] != RESIDENT_ALGORITHM_VERSION:
        return Verdict(False, [*problems, f"algorithm {kit['algorithm_version']} cannot be re-run by "
                                          f"{RESIDENT_ALGORITHM_VERSION}"], 0)
    published = {p["code"]: p for p in kit["parents"]}
    if stage_digest({c: p["frame_digest"] for c, p in published.items()}) != kit["frame_digest"]:
        problems.append("the kit's parent digests do not make up its stage digest")
    read = _read(frame_file, kit)
    digests = {code: _digest(stage, code, members) for code, members in read.members.items()}
    found = stage_digest(digests)
    if found != kit["frame_digest"]:
        problems.append(f"the {stage} file digests to {found}; the draw was made from {kit['frame_digest']}")
    checked = 0
    for code in sorted(set(published) | set(digests)):
        what = f"{PARENT[stage]} {code}"
        if code not in published:
            problems.append(f"{what}: the file lists {stage} under it, but the draw read none")
        elif code not in digests:
            problems.append(f"{what}: the file lists none of its {stage}; the draw read "
                            f"{published[code]['units']}")
        elif digests[code] != published[code]["frame_digest"]:
            problems.append(f"{what}: its {len(read.members[code])} {stage} in the file digest to "
                            f"{digests[code]}; the draw read {published[code]['units']} digesting to "
                            f"{published[code]['frame_digest']}")
            problems += _size_changes(what, read.members[code], kit)
        else:
            try:
                rerun = _rerun(stage, published[code], read.members[code], kit)
            except SamplingError as exc:
                return Verdict(False, [*problems, f"the stage cannot be re-run: {exc}"], checked)
            problems += _compare(what, rerun, read.members[code], kit)
            checked += len(rerun.selected)
    notes = [f"rows of the file the upload's checks refuse, left out as the upload left them out: {read.dropped}"
             ] if read.dropped else []
    return Verdict(not problems, problems, checked, notes)


def _read(frame_file: Path, kit: Mapping[str, Any]) -> _StageFile:
    """The rows the upload kept, grouped by parent, with the same checks and in the same way."""
    stage, parents = kit["stage"], {p["code"] for p in kit["parents"]}
    out, seen = _StageFile(), set[Any]()
    with frame_file.open("rb") as f:
        for line, raw in read_rows(f, frame_file.name, COLUMNS[stage]):
            if stage == "communes":
                commune = check_commune(raw, kit["communes"].__contains__, seen, line).row
                if commune is not None:
                    out.members[kit["communes"][commune.code]].append(Area(commune.code, commune.households))
                out.dropped += commune is None
            elif stage == "villages":
                village = check_village(raw, parents, seen, line).row
                if village is not None:
                    out.members[village.commune_code].append(Area(village.code, village.households))
                out.dropped += village is None
            else:
                household = check_household(raw, parents, seen, line).row
                if household is not None:
                    out.members[household.village_code].append(household.household_id)
                out.dropped += household is None
    return out


def _digest(stage: str, parent: str, members: list[Any]) -> str:
    return listing_digest(parent, members) if stage == "households" else area_digest(members)


def _rerun(stage: str, parent: Mapping[str, Any], members: list[Any], kit: Mapping[str, Any]) -> StageDraw:
    sizes, seed = kit["sizes"], kit["seed"]
    unit = StageUnit(parent["code"], Fraction(1), Fraction(parent["inclusion"]), 1)
    if stage == "communes":
        return draw_communes(members, sizes["communes"] or 0, seed=seed, stratum=parent["code"],
                             method=sizes["commune_method"])
    if stage == "villages":
        return draw_villages(unit, members, sizes["villages_per_commune"], seed=seed)
    # Reserves: as many as were published for the village; the order of the first n never depends on how
    # many follow (``ordered_sample``), so this checks the published ones without knowing the reveal's ratio.
    return draw_households(unit, members, sizes["households_per_village"], seed=seed,
                           campaign_salt=bytes.fromhex(kit["campaign_salt"]), reserves=parent["reserves"])


def _compare(what: str, rerun: StageDraw, members: list[Any], kit: Mapping[str, Any]) -> Iterator[str]:
    """Every rank where the kit and the re-run disagree, described both ways."""
    sizes = {a.code: a.households for a in members if isinstance(a, Area)}
    for role, drawn in (("selected", rerun.selected), ("reserve", rerun.reserves)):
        theirs = sorted((u for u in kit["units"] if u["parent"] == rerun.parent and u["role"] == role),
                        key=lambda u: u["rank"])
        mine = [_view(rerun.parent, u, sizes) for u in drawn]
        for rank in range(1, max(len(mine), len(theirs)) + 1):
            published = theirs[rank - 1] if rank <= len(theirs) else None
            ours = mine[rank - 1] if rank <= len(mine) else None
            if published is None or ours is None or any(published.get(k) != ours.get(k) for k in COMPARED):
                yield f"{what}, {role} #{rank}: the kit has {_describe(published)}; the re-run gives {_describe(ours)}"


COMPARED = ("parent", "rank", "code", "households", "unit_id", "conditional", "inclusion")


def _view(parent: str, unit: StageUnit, sizes: Mapping[str, int]) -> dict[str, Any]:
    """A re-drawn unit in the kit's terms (and, for a household, its id in the file, to name it)."""
    view = {"parent": parent, "rank": unit.rank, "conditional": fraction_text(unit.conditional),
            "inclusion": fraction_text(unit.inclusion)}
    if unit.unit_id:
        return view | {"unit_id": unit.unit_id, "household": unit.code}
    return view | {"code": unit.code, "households": sizes.get(unit.code)}


def _describe(unit: Mapping[str, Any] | None) -> str:
    if unit is None:
        return "nothing"
    if "unit_id" in unit:
        name = f"unit {unit['unit_id']}" + (f" (household {unit['household']} of the file)"
                                            if "household" in unit else "")
    else:
        name = f"{unit['code']} ({unit['households']} households)"
    return f"{name} with probability {unit['conditional']}, overall {unit['inclusion']}"


def _size_changes(what: str, members: list[Any], kit: Mapping[str, Any]) -> Iterator[str]:
    """For areas the kit names (the selected ones): where the file's household count is not the drawn one."""
    sizes = {a.code: a.households for a in members if isinstance(a, Area)}
    for unit in kit["units"]:
        if "code" in unit and unit["code"] in sizes and sizes[unit["code"]] != unit["households"]:
            yield (f"{what}: {unit['code']} has {sizes[unit['code']]} households in the file, "
                   f"{unit['households']} when drawn")
