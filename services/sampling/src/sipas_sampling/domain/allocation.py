"""Allocation of a sample across strata, and the plan a draw carries out.

Proportional allocation with bounds: each stratum gets ``q_h = clamp(λ·N_h, L_h, U_h)`` where
``L_h = min(floor, N_h)`` (the floor, e.g. 90 per commune, never more than the stratum holds),
``U_h = min(cap, N_h)``, and the single scale ``λ`` is solved exactly so that ``Σ q_h`` is the target.
Strata whose proportional share falls below the floor are lifted to it; the others share what is
left in proportion to their volume. The fractional quotas are then rounded by the largest-remainder
method (Hamilton): every stratum gets ``floor(q_h)`` and the seats left over go to the largest
fractional parts — ties to the larger stratum, then to the smaller key — so the total is exactly the
target and no stratum leaves its bounds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from sipas_sampling.domain.errors import InfeasibleAllocation, InvalidParameter
from sipas_sampling.domain.size import HALF, Z95, Number, SizeRule, margin_of_error, stratified_margin
from sipas_sampling.domain.strata import StratumKey, label


def allocate(populations: Mapping[StratumKey, int], target: int, *, floor: int = 0,
             cap: int | None = None) -> dict[StratumKey, int]:
    """Sample size per stratum, summing exactly to ``target`` (see the module docstring)."""
    _check_counts(populations)
    if target < 0 or floor < 0 or (cap is not None and cap < floor):
        raise InvalidParameter(f"need target ≥ 0 and 0 ≤ floor ≤ cap (target {target}, floor {floor}, cap {cap})",
                               field="allocation")
    lower = {key: min(floor, n) for key, n in populations.items()}
    upper = {key: n if cap is None else min(cap, n) for key, n in populations.items()}
    if target < sum(lower.values()):
        raise InfeasibleAllocation(f"the floors alone need {sum(lower.values())} units, more than the target "
                                   f"{target}: raise the target or lower the floor", field="target")
    if target > sum(upper.values()):
        raise InfeasibleAllocation(f"the target {target} exceeds the {sum(upper.values())} units the strata can "
                                   "give (frame size, or caps)", field="target")
    scale = _solve_scale(populations, lower, upper, target)
    quotas = {key: _clamp(scale * n, lower[key], upper[key]) for key, n in populations.items()}
    return _largest_remainder(quotas, populations, target)


def _solve_scale(populations: Mapping[StratumKey, int], lower: Mapping[StratumKey, int],
                 upper: Mapping[StratumKey, int], target: int) -> Fraction:
    """The λ with ``Σ clamp(λ·N_h, L_h, U_h) = target``: that sum is piecewise linear and non-decreasing
    in λ, with kinks where some ``λ·N_h`` meets a bound, so interpolate between the two kinks around it."""
    def total(scale: Fraction) -> Fraction:
        return sum((_clamp(scale * n, lower[k], upper[k]) for k, n in populations.items()), Fraction(0))

    kinks = sorted({Fraction(0)} | {Fraction(b, n) for k, n in populations.items() if n for b in (lower[k], upper[k])})
    # binary search (the sum is monotone) for the first kink whose total reaches the target
    low, high = 0, len(kinks) - 1
    while low < high:
        middle = (low + high) // 2
        if total(kinks[middle]) >= target:
            high = middle
        else:
            low = middle + 1
    kink, kink_total = kinks[low], total(kinks[low])
    if kink_total == target or low == 0:
        return kink
    previous = kinks[low - 1]
    previous_total = total(previous)
    return previous + (target - previous_total) * (kink - previous) / (kink_total - previous_total)


def _clamp(value: Fraction, low: int, high: int) -> Fraction:
    return max(Fraction(low), min(Fraction(high), value))


def _largest_remainder(quotas: Mapping[StratumKey, Fraction], populations: Mapping[StratumKey, int],
                       target: int) -> dict[StratumKey, int]:
    sizes = {key: math.floor(q) for key, q in quotas.items()}
    seats = target - sum(sizes.values())
    ranked = sorted(quotas, key=lambda k: (-(quotas[k] - sizes[k]), -populations[k], k))
    for key in ranked[:seats]:
        sizes[key] += 1
    return dict(sorted(sizes.items()))


def _check_counts(counts: Mapping[StratumKey, int]) -> None:
    for key, n in counts.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InvalidParameter(f"stratum {label(key)}: population must be a whole number ≥ 0, not {n!r}",
                                   field="populations")


@dataclass(frozen=True)
class StratumPlan:
    key: StratumKey
    population: int
    sample: int
    margin: Decimal | None
    """Expected 95% margin of error of a share (p = 0.5, with FPC); ``None`` if nothing is sampled."""


@dataclass(frozen=True)
class SamplePlan:
    """What a draw will take: per stratum N and n; the dimensions name the parts of each key."""

    dimensions: tuple[str, ...]
    strata: tuple[StratumPlan, ...]
    margin: Decimal | None
    """Expected 95% margin of error of an overall share under stratified SRS (p = 0.5, FPC)."""

    @property
    def population(self) -> int:
        return sum(s.population for s in self.strata)

    @property
    def sample(self) -> int:
        return sum(s.sample for s in self.strata)

    def sizes(self) -> dict[StratumKey, int]:
        return {s.key: s.sample for s in self.strata}

    def populations(self) -> dict[StratumKey, int]:
        return {s.key: s.population for s in self.strata}


def build_plan(dimensions: Sequence[str], populations: Mapping[StratumKey, int], sizes: Mapping[StratumKey, int],
               z: Number = Z95, p: Number = HALF) -> SamplePlan:
    """A plan from sizes decided elsewhere (checked: same strata, ``0 ≤ n_h ≤ N_h``)."""
    _check_counts(populations)
    if set(populations) != set(sizes):
        raise InvalidParameter("sizes and populations must name the same strata", field="sizes")
    width = len(dimensions)
    strata = []
    for key in sorted(populations):
        population, sample = populations[key], sizes[key]
        if len(key) != width:
            raise InvalidParameter(f"stratum {label(key)} has {len(key)} parts, not {width}", field="populations")
        if not 0 <= sample <= population:
            raise InvalidParameter(f"stratum {label(key)}: sample {sample} not within 0…{population}", field="sizes")
        strata.append(StratumPlan(key, population, sample, margin_of_error(population, sample, z, p)))
    overall = stratified_margin(((s.population, s.sample) for s in strata), z, p)
    return SamplePlan(tuple(dimensions), tuple(strata), overall)


def plan_proportional(dimensions: Sequence[str], populations: Mapping[StratumKey, int], target: int, *,
                      floor: int = 0, cap: int | None = None) -> SamplePlan:
    """Allocate ``target`` proportionally with a floor (and optional cap) per stratum."""
    return build_plan(dimensions, populations, allocate(populations, target, floor=floor, cap=cap))


def plan_by_rule(dimensions: Sequence[str], populations: Mapping[StratumKey, int], rule: SizeRule, *,
                 floor: int = 0, cap: int | None = None) -> SamplePlan:
    """Size each stratum on its own by ``rule`` (Slovin or Cochran), then apply the floor and cap."""
    _check_counts(populations)
    if floor < 0 or (cap is not None and cap < floor):
        raise InvalidParameter(f"need 0 ≤ floor ≤ cap (floor {floor}, cap {cap})", field="allocation")
    ceiling = math.inf if cap is None else cap
    sizes = {key: int(min(max(rule(n), floor), n, ceiling)) for key, n in populations.items()}
    return build_plan(dimensions, populations, sizes)
