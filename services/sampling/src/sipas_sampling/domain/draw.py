"""The verifiable stratified draw: SRS without replacement within each stratum, plus ordered reserves.

A draw is a pure function of (frame, plan, stratification, seed, reserve policy, algorithm version),
and the frame enters only through its rows in canonical order and their digest. Within a stratum the
units are ordered canonically (by ``(agency_code, dossier_id)``); the stratum's random stream is

    RandomStream(seed, ALGORITHM_VERSION, frame digest, "stratum", str(len(key)), *key)

and the first ``n_h + r_h`` steps of a Fisher-Yates shuffle (``prng.ordered_sample``) pick positions
in that order: the first ``n_h`` are the sample, in draw order, the next ``r_h`` the reserves, in the
order they are to be used. Because the shuffle's prefix does not depend on its length, changing the
reserve policy never changes the sample.

Commit-reveal: ``seed_commitment(seed)`` is published before the draw; after it, the seed is revealed
and ``verify_draw`` re-runs everything and compares unit by unit.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction

from sipas_sampling.domain.allocation import SamplePlan, StratumPlan
from sipas_sampling.domain.digest import frame_digest, sort_key
from sipas_sampling.domain.errors import FrameMismatch, InvalidParameter, SamplingError
from sipas_sampling.domain.frame import FrameRow, clean_text
from sipas_sampling.domain.prng import RandomStream, ordered_sample, seed_commitment
from sipas_sampling.domain.pseudonym import check_salt, unit_id
from sipas_sampling.domain.size import Number, exact
from sipas_sampling.domain.strata import Stratification, StratumKey, label

ALGORITHM_VERSION = "sipas-srswor-hmac-sha256/1"


@dataclass(frozen=True)
class ReservePolicy:
    """Reserves per stratum: a fixed ``count``, or a ``ratio`` of the stratum's sample (rounded up);
    never more than the units the sample leaves."""

    count: int | None = None
    ratio: Fraction | None = None

    def __post_init__(self) -> None:
        if (self.count is None) == (self.ratio is None):
            raise InvalidParameter("give a reserve count or a reserve ratio, not both or neither", field="reserves")
        if self.count is not None and self.count < 0:
            raise InvalidParameter("the reserve count cannot be negative", field="reserves")
        if self.ratio is not None:
            object.__setattr__(self, "ratio", exact(self.ratio))
            if self.ratio < 0:
                raise InvalidParameter("the reserve ratio cannot be negative", field="reserves")

    @classmethod
    def of_ratio(cls, ratio: Number) -> ReservePolicy:
        return cls(ratio=exact(ratio))

    def size(self, population: int, sample: int) -> int:
        wanted = self.count if self.count is not None else math.ceil((self.ratio or 0) * sample)
        return min(wanted, population - sample)


DEFAULT_RESERVES = ReservePolicy(ratio=Fraction(1, 5))


@dataclass(frozen=True)
class DrawnUnit:
    unit_id: str
    agency_code: str
    dossier_id: str
    stratum: StratumKey
    position: int
    """Index of the unit in its stratum's canonical order (0-based)."""
    rank: int
    """Order of selection within the sample, or of use within the reserves (1-based)."""


@dataclass(frozen=True)
class StratumDraw:
    key: StratumKey
    population: int
    selected: tuple[DrawnUnit, ...]
    reserves: tuple[DrawnUnit, ...]


@dataclass(frozen=True)
class Draw:
    algorithm_version: str
    frame_digest: str
    seed_commitment: str
    dimensions: tuple[str, ...]
    strata: tuple[StratumDraw, ...]

    def selected(self) -> Iterator[DrawnUnit]:
        for stratum in self.strata:
            yield from stratum.selected

    def stratum(self, key: StratumKey) -> StratumDraw:
        for stratum in self.strata:
            if stratum.key == key:
                return stratum
        raise KeyError(key)


def draw_sample(rows: Iterable[FrameRow], plan: SamplePlan, stratification: Stratification, *, seed: str,
                campaign_salt: bytes, reserves: ReservePolicy = DEFAULT_RESERVES,
                expected_digest: str | None = None, pinned_digest: str | None = None) -> Draw:
    """Draw the plan's sample from the frame (see the module docstring).

    ``pinned_digest``: the digest the caller already computed over these exact rows (the service does
    so from stored row hashes, so it can pass rows without their contact fields); by default the
    digest is computed here from the rows.
    """
    commitment, salt = seed_commitment(seed), check_salt(campaign_salt)
    frame = list(rows)
    digest = pinned_digest or frame_digest(frame)
    if expected_digest is not None and digest != expected_digest:
        raise FrameMismatch(f"the frame's digest is {digest}, not the expected {expected_digest}", field="frame")
    if stratification.names != plan.dimensions:
        raise InvalidParameter(f"the plan stratifies by {plan.dimensions}, not {stratification.names}",
                               field="stratification")
    strata = _group(frame, stratification, plan)
    drawn = tuple(_draw_stratum(stratum, strata.get(stratum.key, []), seed, digest, salt, reserves)
                  for stratum in plan.strata)
    _check_unique_ids(drawn)
    return Draw(ALGORITHM_VERSION, digest, commitment, plan.dimensions, drawn)


def stratum_picks(stratum: StratumPlan, seed: str, digest: str, reserves: ReservePolicy) -> tuple[list[int], list[int]]:
    """Positions (0-based, in the stratum's canonical order) of the sample, then of the ordered reserves.

    This is the whole random part of the draw; a caller holding the frame in a database can fetch just
    these positions instead of loading the stratum (the service does, so memory does not grow with N).
    """
    stream = RandomStream(seed, ALGORITHM_VERSION, digest, "stratum", str(len(stratum.key)), *stratum.key)
    extra = reserves.size(stratum.population, stratum.sample)
    picks = ordered_sample(stream, stratum.population, stratum.sample + extra)
    return picks[:stratum.sample], picks[stratum.sample:]


def _draw_stratum(stratum: StratumPlan, units: list[FrameRow], seed: str, digest: str, salt: bytes,
                  reserves: ReservePolicy) -> StratumDraw:
    selected, backups = stratum_picks(stratum, seed, digest, reserves)

    def drawn(positions: list[int]) -> tuple[DrawnUnit, ...]:
        # Canonical (cleaned) values, as the digest sees them: whitespace in a file never changes a draw.
        return tuple(DrawnUnit(unit_id(salt, units[p].dossier_id), clean_text(units[p].agency_code),
                               clean_text(units[p].dossier_id), stratum.key, p, rank)
                     for rank, p in enumerate(positions, 1))

    return StratumDraw(stratum.key, stratum.population, drawn(selected), drawn(backups))


def _check_unique_ids(strata: tuple[StratumDraw, ...]) -> None:
    seen: dict[str, str] = {}
    for stratum in strata:
        for unit in (*stratum.selected, *stratum.reserves):
            other = seen.setdefault(unit.unit_id, unit.dossier_id)
            if other != unit.dossier_id:
                raise FrameMismatch(f"dossiers {other} and {unit.dossier_id} share unit id {unit.unit_id}: "
                                    "use another campaign salt", field="campaign_salt")


def _group(frame: list[FrameRow], stratification: Stratification, plan: SamplePlan) -> dict[StratumKey, list[FrameRow]]:
    dossiers: set[str] = set()
    strata: dict[StratumKey, list[FrameRow]] = defaultdict(list)
    for row in sorted(frame, key=sort_key):
        dossier = clean_text(row.dossier_id)
        if dossier in dossiers:
            raise FrameMismatch(f"dossier {dossier} appears twice in the frame", field="frame")
        dossiers.add(dossier)
        strata[stratification.key(row)].append(row)
    expected = plan.populations()
    for key, units in strata.items():
        if expected.get(key) != len(units):
            raise FrameMismatch(f"stratum {label(key)} holds {len(units)} frame units but the plan counts "
                                f"{expected.get(key, 0)}: the plan was made from another frame", field="frame")
    for key, population in expected.items():
        if population and key not in strata:
            raise FrameMismatch(f"stratum {label(key)} is in the plan but has no frame units", field="frame")
    return strata


@dataclass(frozen=True)
class DrawCheck:
    ok: bool
    problems: tuple[str, ...]


def verify_draw(published: Draw, rows: Iterable[FrameRow], plan: SamplePlan, stratification: Stratification, *,
                seed: str, campaign_salt: bytes, reserves: ReservePolicy = DEFAULT_RESERVES) -> DrawCheck:
    """Re-run a published draw from the revealed seed and say whether every unit matches."""
    try:
        if seed_commitment(seed) != published.seed_commitment:
            return DrawCheck(False, ("the revealed seed does not hash to the published commitment",))
    except SamplingError as exc:
        return DrawCheck(False, (f"the revealed seed is unusable: {exc}",))
    if published.algorithm_version != ALGORITHM_VERSION:
        return DrawCheck(False, (f"algorithm {published.algorithm_version} cannot be re-run by {ALGORITHM_VERSION}",))
    try:
        rerun = draw_sample(rows, plan, stratification, seed=seed, campaign_salt=campaign_salt, reserves=reserves)
    except SamplingError as exc:
        return DrawCheck(False, (f"the draw cannot be re-run: {exc}",))
    problems = []
    if rerun.frame_digest != published.frame_digest:
        problems.append(f"the frame's digest is {rerun.frame_digest}, the draw was published with "
                        f"{published.frame_digest}")
    mine = {s.key: s for s in rerun.strata}
    theirs = {s.key: s for s in published.strata}
    for key in sorted(set(mine) | set(theirs)):
        if mine.get(key) != theirs.get(key):
            problems.append(f"stratum {label(key)} differs from the re-run")
    return DrawCheck(not problems, tuple(problems))
