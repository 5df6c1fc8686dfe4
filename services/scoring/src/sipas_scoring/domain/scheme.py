"""What scoring reads: instruments, schemes and ballots as plain frozen values.

These mirror the registry's published definitions (``InstrumentDefinition``, ``SchemeDefinition``)
and the ballots service's accepted ballots, reduced to what the arithmetic needs. The application
layer translates events into these; the domain imports nothing but the standard library.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from functools import cached_property
from typing import Literal

from sipas_scoring.domain.errors import OffScale, SchemeMismatch
from sipas_scoring.domain.rounding import Rounding

SchemeKind = Literal["share-satisfied", "points", "online-766"]
FactorIndexRule = Literal["mean_items", "pooled", "overall_item"]
OverallIndexRule = Literal["mean_factors", "pooled", "overall_item"]
NationalIndexRule = Literal["mean_provinces", "population_weighted"]
UnansweredRule = Literal["zero", "answered_only"]
Answers = Mapping[str, int | None]


@dataclass(frozen=True)
class ScaleLevel:
    """One answer level; ``points`` defaults to the level's value (1-5 on the usual scale)."""

    value: int
    satisfied: bool
    points: int | None = None

    @property
    def earns(self) -> int:
        return self.value if self.points is None else self.points


@dataclass(frozen=True)
class Factor:
    code: str
    items: tuple[str, ...]
    overall_item: str | None = None


@dataclass(frozen=True)
class Instrument:
    """A questionnaire version: its scale, its factors' criteria, optional overall items."""

    scale: tuple[ScaleLevel, ...]
    factors: tuple[Factor, ...]
    overall_item: str | None = None
    expectation_options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        values = [level.value for level in self.scale]
        if len(values) < 2 or len(set(values)) != len(values):
            raise SchemeMismatch("a scale needs at least two distinct levels")
        codes = [code for factor in self.factors for code in factor.items]
        if not codes or len(set(codes)) != len(codes):
            raise SchemeMismatch("factors need items, and an item belongs to one factor only")

    @cached_property  # made once: the figures ask for them for every unit (the instrument never changes)
    def criteria(self) -> tuple[str, ...]:
        """Every scored item (the factors' criteria; overall-satisfaction items are not criteria)."""
        return tuple(code for factor in self.factors for code in factor.items)

    @cached_property
    def satisfied_levels(self) -> frozenset[int]:
        return frozenset(level.value for level in self.scale if level.satisfied)

    def level(self, value: int) -> ScaleLevel:
        for level in self.scale:
            if level.value == value:
                return level
        raise OffScale(f"{value} is not a level of the scale")

    def factor(self, code: str) -> Factor:
        for factor in self.factors:
            if factor.code == code:
                return factor
        raise SchemeMismatch(f"the instrument has no factor {code!r}")


def five_level_scale() -> tuple[ScaleLevel, ...]:
    """1 Rất không hài lòng … 5 Rất hài lòng; 4 and 5 count as satisfied; points equal the level."""
    return tuple(ScaleLevel(value=v, satisfied=v >= 4) for v in range(1, 6))


@dataclass(frozen=True)
class Scheme:
    """A scoring-scheme version; defaults are the built-in ``share-satisfied`` settings."""

    kind: SchemeKind = "share-satisfied"
    rounding: Rounding = field(default_factory=Rounding)
    factor_index: FactorIndexRule = "mean_items"
    overall_index: OverallIndexRule = "mean_factors"
    national_index: NationalIndexRule = "mean_provinces"
    points: Mapping[int, int] = field(default_factory=dict)
    factor_max_points: Fraction = Fraction(6)
    unanswered: UnansweredRule = "zero"
    small_cell_n: int = 30

    def __post_init__(self) -> None:
        if not isinstance(self.factor_max_points, Fraction):
            object.__setattr__(self, "factor_max_points", _fraction(self.factor_max_points))
        if self.factor_max_points <= 0:
            raise SchemeMismatch("factor_max_points must be positive")
        if self.small_cell_n < 1:
            raise SchemeMismatch("small_cell_n must be at least 1")

    def points_for(self, level: ScaleLevel) -> int:
        return self.points.get(level.value, level.earns)


def points_scheme(unanswered: UnansweredRule = "zero") -> Scheme:
    """The built-in ``points`` scheme: truncate to 2 decimals, 6 points per factor, unanswered earns 0."""
    return Scheme(kind="points", rounding=Rounding("truncate", 2), unanswered=unanswered)


def online_766_scheme() -> Scheme:
    """The built-in ``online-766`` scheme: shares of dossiers, 2 decimals half-up."""
    return Scheme(kind="online-766")


@dataclass(frozen=True)
class Ballot:
    """An accepted ballot: item code → scale value, ``None`` meaning not applicable / no answer.

    An item the ballot does not carry is not on it; ``None`` is on it but unanswered.
    """

    ballot_id: str
    answers: Answers
    expectations: frozenset[str] = frozenset()

    def answer(self, item: str) -> int | None:
        return self.answers.get(item)


def check_on_scale(instrument: Instrument, ballots: Iterable[Ballot]) -> None:
    """Refuse any answer off the scale: accepted ballots never carry one, so it is a bug upstream."""
    values = {level.value for level in instrument.scale}
    for ballot in ballots:
        for item, value in ballot.answers.items():
            if value is not None and value not in values:
                raise OffScale(f"ballot {ballot.ballot_id}: {item}={value} is not on the scale")


def _fraction(value: object) -> Fraction:
    if isinstance(value, int | Decimal | Fraction):
        return Fraction(value)
    if isinstance(value, str):
        return Fraction(Decimal(value))
    raise SchemeMismatch(f"not an exact number: {value!r}")
