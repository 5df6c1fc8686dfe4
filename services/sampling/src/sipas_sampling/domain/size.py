"""Sample size per stratum (METHODOLOGY §5) and the margin of error a size buys (§4).

All arithmetic is on exact fractions, so a ceiling is taken of the true value: Slovin with N = 400 and
e = 5% is exactly 200, where floating point gives 200.00000000000003 and a ceiling of 201. Parameters
may be given as ``int``, ``Fraction``, ``Decimal`` or decimal text; a ``float`` is read through its
shortest decimal representation (``0.05`` means 5/100, not the binary number nearest to it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, localcontext
from fractions import Fraction

from sipas_sampling.domain.errors import InvalidParameter

Number = int | float | Decimal | Fraction | str
SizeRule = Callable[[int], int]
"""A rule giving a stratum's sample size from its population size."""

FIVE_PERCENT = Fraction(5, 100)
Z95 = Fraction(196, 100)
HALF = Fraction(1, 2)
MARGIN_PLACES = Decimal("0.000001")


def exact(value: Number) -> Fraction:
    """``value`` as an exact fraction (floats through their shortest decimal text)."""
    try:
        return Fraction(repr(value)) if isinstance(value, float) else Fraction(value)
    except (ValueError, ZeroDivisionError) as exc:
        raise InvalidParameter(f"{value!r} is not a number") from exc


def slovin(population: int, margin: Number = FIVE_PERCENT) -> int:
    """Slovin: ``n = ceil(N / (1 + N e²))``, never more than N."""
    _check_population(population)
    e = _open_unit(margin, "margin")
    return min(population, math.ceil(population / (1 + population * e * e)))


def cochran_n0(margin: Number = FIVE_PERCENT, z: Number = Z95, p: Number = HALF) -> Fraction:
    """Cochran's infinite-population size ``n₀ = z² p(1-p) / e²`` (384.16 for the defaults)."""
    e, share, zz = _open_unit(margin, "margin"), _open_unit(p, "p"), exact(z)
    if zz <= 0:
        raise InvalidParameter(f"z must be positive, not {z!r}", field="z")
    return zz * zz * share * (1 - share) / (e * e)


def cochran(population: int | None, margin: Number = FIVE_PERCENT, z: Number = Z95, p: Number = HALF) -> int:
    """Cochran with finite population correction: ``n = ceil(n₀ / (1 + (n₀ - 1) / N))``, never more than N.

    ``population=None`` means an infinite population: ``ceil(n₀)``."""
    n0 = cochran_n0(margin, z, p)
    if population is None:
        return math.ceil(n0)
    _check_population(population)
    if population == 0:
        return 0
    return min(population, math.ceil(n0 / (1 + (n0 - 1) / population)))


@dataclass(frozen=True)
class Slovin:
    """The Slovin rule as a ``SizeRule`` (parameters are stored as exact fractions)."""

    margin: Number = FIVE_PERCENT

    def __post_init__(self) -> None:
        object.__setattr__(self, "margin", _open_unit(self.margin, "margin"))

    def __call__(self, population: int) -> int:
        return slovin(population, self.margin)


@dataclass(frozen=True)
class Cochran:
    """The Cochran rule (with finite population correction) as a ``SizeRule`` (parameters stored as fractions)."""

    margin: Number = FIVE_PERCENT
    z: Number = Z95
    p: Number = HALF

    def __post_init__(self) -> None:
        cochran_n0(self.margin, self.z, self.p)  # validates
        for name in ("margin", "z", "p"):
            object.__setattr__(self, name, exact(getattr(self, name)))

    def __call__(self, population: int) -> int:
        return cochran(population, self.margin, self.z, self.p)


def margin_of_error(population: int, sample: int, z: Number = Z95, p: Number = HALF) -> Decimal | None:
    """Half-width of the confidence interval of a share from SRS without replacement:
    ``z · sqrt(p(1-p)/n · (N-n)/(N-1))``, the FPC that Cochran's formula inverts.

    Rounded *up* to six decimals, so the stated precision is never better than the true one.
    ``None`` when nothing is sampled (no estimate); 0 for a census."""
    _check_population(population)
    if not 0 <= sample <= population:
        raise InvalidParameter(f"sample {sample} is not between 0 and the population {population}", field="sample")
    if sample == 0:
        return None
    if sample == population:
        return Decimal(0).quantize(MARGIN_PLACES)
    share, zz = _open_unit(p, "p"), exact(z)
    variance = zz * zz * share * (1 - share) / sample * Fraction(population - sample, population - 1)
    return sqrt_up(variance)


def stratified_margin(strata: Iterable[tuple[int, int]], z: Number = Z95, p: Number = HALF) -> Decimal | None:
    """Margin of error of a share estimated from stratified SRS, strata given as ``(N_h, n_h)``:
    ``z · sqrt(Σ (N_h/N)² · p(1-p)/n_h · (N_h-n_h)/(N_h-1))``. ``None`` when a non-empty stratum has
    no sample (its share of the population would go unestimated)."""
    pairs = [(population, sample) for population, sample in strata if population > 0]
    total = sum(population for population, _ in pairs)
    if total == 0 or any(sample == 0 for _, sample in pairs):
        return None
    share, zz = _open_unit(p, "p"), exact(z)
    variance = Fraction(0)
    for population, sample in pairs:
        if sample < population:
            weight = Fraction(population, total)
            variance += weight * weight / sample * Fraction(population - sample, population - 1)
    return sqrt_up(zz * zz * share * (1 - share) * variance)


def sqrt_up(value: Fraction) -> Decimal:
    """``sqrt(value)`` rounded up to six decimals (exact squares stay exact)."""
    with localcontext() as ctx:
        ctx.prec = 50
        root = (Decimal(value.numerator) / Decimal(value.denominator)).sqrt()
        return root.quantize(MARGIN_PLACES, rounding=ROUND_CEILING)


def _check_population(population: int) -> None:
    if isinstance(population, bool) or not isinstance(population, int) or population < 0:
        raise InvalidParameter(f"population must be a whole number ≥ 0, not {population!r}", field="population")


def _open_unit(value: Number, name: str) -> Fraction:
    fraction = exact(value)
    if not 0 < fraction < 1:
        raise InvalidParameter(f"{name} must be strictly between 0 and 1, not {value!r}", field=name)
    return fraction
