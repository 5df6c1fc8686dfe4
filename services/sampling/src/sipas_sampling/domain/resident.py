"""The resident design (used since 2022): communes, then villages by PPS, then households by SRS.

Each stage is drawn separately, because the next stage's frame exists only after the previous one is
drawn (households are listed in the selected villages). Every stage is a pure function of its own
frame, the campaign seed and ``RESIDENT_ALGORITHM_VERSION``; its random stream is

    RandomStream(seed, RESIDENT_ALGORITHM_VERSION, stage frame digest, stage, parent code)

- Stage 1, communes within a stratum (e.g. a province): ``srs`` (probability m/M), ``pps`` (systematic
  PPS on households, as stage 2) or ``all`` (certainty, probability 1).
- Stage 2, villages within a selected commune: systematic PPS on the number of households. Villages in
  code order; a village whose expected hits ``k·M_i/M`` reach 1 is taken with certainty and the rest
  redrawn with k and M reduced, until none does. Then, working in units of ``1/k`` household so all
  arithmetic is integral, the points ``start + j·M`` (``start`` uniform in ``[0, M)``, j < k) fall on
  villages laid end to end with lengths ``k·M_i``: village i is hit with probability exactly ``k·M_i/M``.
- Stage 3, households within a selected village: SRS without replacement, ordered reserves after them.

Sizes are capped at what a frame holds ("never more than N"). Each selected unit carries its
conditional probability and its overall inclusion probability (the product down the stages); the
design weight is the inverse of the latter. Reserves carry the probabilities of the sample they stand
in for: a replacement inherits the replaced unit's weight.

Households are numbered within their village, so a household's pseudonym is taken over
``household_key(village, household)``, the compact JSON array ``["<village>","<household>"]``:
unambiguous whatever either code contains. A stage's whole frame (every parent's part) is pinned by
``stage_digest``, SHA-256 over ``sipas-stage/v1`` and the lines ``["<parent>","<its digest>"]`` in parent
code order, where a parent's digest is the one its draw computes (``area_digest`` for communes and
villages, ``listing_digest`` for households): the value committed before the stage is drawn.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from sipas_sampling.domain.errors import InvalidParameter
from sipas_sampling.domain.frame import clean_text
from sipas_sampling.domain.prng import RandomStream, ordered_sample
from sipas_sampling.domain.pseudonym import check_salt, unit_id

RESIDENT_ALGORITHM_VERSION = "sipas-resident-hmac-sha256/1"
STAGE_DIGEST_VERSION = "sipas-stage/v1"
Stage = Literal["communes", "villages", "households"]


@dataclass(frozen=True)
class Area:
    """A commune or village with its measure of size (households)."""

    code: str
    households: int


@dataclass(frozen=True)
class StageUnit:
    code: str
    conditional: Fraction
    """Probability of selection given the parent unit was selected."""
    inclusion: Fraction
    """Overall inclusion probability: the parent's times ``conditional``."""
    rank: int
    unit_id: str | None = None
    """Pseudonymous id, for households."""

    @property
    def weight(self) -> Fraction:
        return 1 / self.inclusion


@dataclass(frozen=True)
class StageDraw:
    stage: Stage
    parent: str
    frame_digest: str
    selected: tuple[StageUnit, ...]
    reserves: tuple[StageUnit, ...] = ()


ROOT = StageUnit(code="", conditional=Fraction(1), inclusion=Fraction(1), rank=1)


def draw_communes(communes: Sequence[Area], m: int, *, seed: str, stratum: str,
                  method: Literal["srs", "pps", "all"] = "srs") -> StageDraw:
    """Stage 1: ``m`` communes of a stratum."""
    ordered, digest = _areas(communes)
    stream = RandomStream(seed, RESIDENT_ALGORITHM_VERSION, digest, "communes", stratum)
    if method == "all":
        picks = {i: Fraction(1) for i in range(len(ordered))}
    elif method == "pps":
        picks = systematic_pps([a.households for a in ordered], m, stream)
    else:
        size = min(m, len(ordered))
        picks = {i: Fraction(size, len(ordered)) for i in ordered_sample(stream, len(ordered), size)}
    return StageDraw("communes", stratum, digest, _units(ROOT, ordered, picks))


def draw_villages(commune: StageUnit, villages: Sequence[Area], k: int, *, seed: str) -> StageDraw:
    """Stage 2: ``k`` villages of a selected commune, systematic PPS on households."""
    ordered, digest = _areas(villages)
    stream = RandomStream(seed, RESIDENT_ALGORITHM_VERSION, digest, "villages", commune.code)
    picks = systematic_pps([a.households for a in ordered], k, stream)
    return StageDraw("villages", commune.code, digest, _units(commune, ordered, picks))


def draw_households(village: StageUnit, households: Sequence[str], h: int, *, seed: str, campaign_salt: bytes,
                    reserves: int = 0) -> StageDraw:
    """Stage 3: ``h`` households of a selected village's listing by SRS, then ``reserves`` in order."""
    salt = check_salt(campaign_salt)
    codes, digest = _listing(village.code, households)
    stream = RandomStream(seed, RESIDENT_ALGORITHM_VERSION, digest, "households", village.code)
    size = min(h, len(codes))
    picks = ordered_sample(stream, len(codes), size + min(max(reserves, 0), len(codes) - size))
    share = Fraction(size, len(codes)) if codes else Fraction(0)

    def unit(index: int, rank: int) -> StageUnit:
        code = codes[index]
        key = household_key(village.code, code)
        return StageUnit(code, share, village.inclusion * share, rank, unit_id(salt, key))

    return StageDraw("households", village.code, digest,
                     tuple(unit(i, r) for r, i in enumerate(picks[:size], 1)),
                     tuple(unit(i, r) for r, i in enumerate(picks[size:], 1)))


def systematic_pps(sizes: Sequence[int], n: int, stream: RandomStream) -> dict[int, Fraction]:
    """Systematic PPS of ``n`` of the units with these sizes: selected index -> selection probability."""
    if n < 0 or any(s < 0 for s in sizes):
        raise InvalidParameter("sizes and the number to select cannot be negative", field="size")
    rest = [i for i, s in enumerate(sizes) if s > 0]
    n = min(n, len(rest))
    picks: dict[int, Fraction] = {}
    while n > len(picks):
        wanted, total = n - len(picks), sum(sizes[i] for i in rest)
        certain = [i for i in rest if wanted * sizes[i] >= total]
        if not certain:
            break
        picks.update((i, Fraction(1)) for i in certain)
        rest = [i for i in rest if i not in picks]
    wanted = n - len(picks)
    if wanted:
        total = sum(sizes[i] for i in rest)
        start, low = stream.below(total), 0
        for i in rest:
            high = low + wanted * sizes[i]
            first = max(0, -((start - low) // total))  # first j with start + j·total >= low
            if first < wanted and start + first * total < high:
                picks[i] = Fraction(wanted * sizes[i], total)
            low = high
    return dict(sorted(picks.items()))


def household_key(village: str, household: str) -> str:
    """The key a listed household is pseudonymised (and its contact sealed) under."""
    return json.dumps([clean_text(village), clean_text(household)], ensure_ascii=False, separators=(",", ":"))


def area_digest(areas: Sequence[Area]) -> str:
    """Digest of one parent's communes or villages, as ``draw_communes``/``draw_villages`` compute it."""
    return _areas(areas)[1]


def listing_digest(village: str, households: Sequence[str]) -> str:
    """Digest of one village's household listing, as ``draw_households`` computes it."""
    return _listing(village, households)[1]


def stage_digest(parents: Mapping[str, str]) -> str:
    """Digest of a whole stage frame from its parents' digests (parent code -> digest)."""
    return _digest(STAGE_DIGEST_VERSION, [[code, parents[code]] for code in sorted(parents)])


def fraction_text(value: Fraction) -> str:
    """A probability as the exact text events carry: ``n/d``, always with its denominator."""
    return f"{value.numerator}/{value.denominator}"


def _listing(village: str, households: Sequence[str]) -> tuple[list[str], str]:
    codes = sorted({clean_text(c) for c in households})
    if len(codes) != len(households) or not all(codes):
        raise InvalidParameter(f"village {village}: household codes must be present and distinct",
                               field="households")
    return codes, _digest("sipas-households/v1", [[c] for c in codes])


def _areas(areas: Sequence[Area]) -> tuple[list[Area], str]:
    ordered = sorted((Area(clean_text(a.code), a.households) for a in areas), key=lambda a: a.code)
    codes = [a.code for a in ordered]
    if len(set(codes)) != len(codes) or not all(codes) or any(a.households < 0 for a in ordered):
        raise InvalidParameter("area codes must be present and distinct, household counts ≥ 0", field="areas")
    return ordered, _digest("sipas-areas/v1", [[a.code, a.households] for a in ordered])


def _digest(version: str, lines: list[list[str | int]]) -> str:
    digest = hashlib.sha256(version.encode("ascii") + b"\n")
    for line in lines:
        digest.update(json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n")
    return digest.hexdigest()


def _units(parent: StageUnit, ordered: list[Area], picks: dict[int, Fraction]) -> tuple[StageUnit, ...]:
    return tuple(StageUnit(ordered[i].code, p, parent.inclusion * p, rank)
                 for rank, (i, p) in enumerate(picks.items(), 1))
