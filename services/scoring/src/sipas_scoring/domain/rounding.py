"""Presentation rounding: the one place an exact figure becomes a fixed number of decimals.

Scores are carried as exact ``Fraction`` values and rounded once, when shown, by the scheme's rule:
``half_up`` (ties away from zero, the national SIPAS rule) or ``truncate`` (toward zero, the rule the
commune PAR reports use: 786/960 = 81.875% is printed 81,87). The rounding is done on the exact
rational value, so no binary-float artefact can move a tie.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Literal

RoundingRule = Literal["half_up", "truncate"]
Exact = Fraction | Decimal | int


@dataclass(frozen=True)
class Rounding:
    rule: RoundingRule = "half_up"
    places: int = 2

    def __post_init__(self) -> None:
        if self.rule not in ("half_up", "truncate"):
            raise ValueError(f"unknown rounding rule {self.rule!r}")
        if not 0 <= self.places <= 12:
            raise ValueError("places must be between 0 and 12")

    def present(self, value: Exact | float) -> Decimal:
        return present(value, self.rule, self.places)


def present(value: Exact | float, rule: RoundingRule = "half_up", places: int = 2) -> Decimal:
    """``value`` rounded by ``rule`` to ``places`` decimals, as a Decimal with exactly that exponent.

    Floats (interval bounds only) are taken at their exact binary value.
    """
    exact = Fraction(value)
    scaled = abs(exact) * 10**places
    if rule == "half_up":
        magnitude = math.floor(scaled + Fraction(1, 2))
    elif rule == "truncate":
        magnitude = math.floor(scaled)
    else:
        raise ValueError(f"unknown rounding rule {rule!r}")
    signed = -magnitude if exact < 0 else magnitude
    return Decimal(signed).scaleb(-places)


def format_vi(value: Decimal) -> str:
    """Vietnamese number style: comma for decimals, dot between thousands (``35.268``, ``88,55``)."""
    return f"{value:,f}".translate(_VI_MARKS)


_VI_MARKS = str.maketrans(",.", ".,")
