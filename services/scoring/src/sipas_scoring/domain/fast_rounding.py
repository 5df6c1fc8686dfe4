""":func:`rounding.present` in integer arithmetic: the same Decimal for every value, several times faster.

A figures document presents some hundred thousand numbers on a national refresh; the reference goes
through ``Fraction`` arithmetic for each. Here the exact value's integer ratio n/d is rounded directly:
``half_up`` is ⌊|n|·10^p/d + 1/2⌋ = ⌊(2|n|·10^p + d) / 2d⌋ and ``truncate`` ⌊|n|·10^p / d⌋ — the
reference's formulas on the same exact rational (floats at their exact binary value), so the result is
the same Decimal, exponent included. A property test keeps the two equal.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from sipas_scoring.domain.rounding import RoundingRule

_POWERS = [10**k for k in range(13)]


def present(value: Fraction | Decimal | int | float, rule: RoundingRule = "half_up", places: int = 2) -> Decimal:
    """As :func:`sipas_scoring.domain.rounding.present`."""
    n, d = value.as_integer_ratio()
    scaled = abs(n) * (_POWERS[places] if 0 <= places < len(_POWERS) else 10**places)
    if rule == "half_up":
        magnitude = (2 * scaled + d) // (2 * d)
    elif rule == "truncate":
        magnitude = scaled // d
    else:
        raise ValueError(f"unknown rounding rule {rule!r}")
    return Decimal(-magnitude if n < 0 else magnitude).scaleb(-places)
