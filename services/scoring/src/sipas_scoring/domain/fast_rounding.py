""":func:`rounding.present` in integer arithmetic: the same Decimal for every value, several times faster.

A figures document presents some hundred thousand numbers on a national refresh; the reference goes
through ``Fraction`` arithmetic for each. Here the exact value's integer ratio n/d is rounded directly:
``half_up`` is ⌊|n|·10^p/d + 1/2⌋ = ⌊(2|n|·10^p + d) / 2d⌋ and ``truncate`` ⌊|n|·10^p / d⌋ — the
reference's formulas on the same exact rational (floats at their exact binary value), so the result is
the same Decimal, exponent included; :func:`present_text` gives its text (what a document shows) without
making the Decimal. A property test keeps all three equal (``test_scoring_rounding.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sipas_scoring.domain.rounding import RoundingRule

_POWERS = [10**k for k in range(13)]
_PLAIN = 10**27
_FLOAT_EXACT = 2.0**31  # below it the product is within 2**-22 of the exact one: well inside the edge below
_EDGE = 1e-6


def present(value: Fraction | Decimal | int | float, rule: RoundingRule = "half_up", places: int = 2) -> Decimal:
    """As :func:`sipas_scoring.domain.rounding.present`."""
    n, magnitude = _rounded(value, rule, places)
    return Decimal(-magnitude if n < 0 else magnitude).scaleb(-places)


def present_text(value: Fraction | Decimal | int | float, rule: RoundingRule = "half_up", places: int = 2) -> str:
    """``str(present(value, rule, places))``, written directly: ``-`` only for a non-zero negative, then the
    magnitude with ``places`` decimals."""
    n, magnitude = _rounded(value, rule, places)
    return _written(n < 0, magnitude, places)


def _written(negative: bool, magnitude: int, places: int) -> str:
    """The text of ``present``'s Decimal from its sign and rounded magnitude (see :func:`present_text`)."""
    if magnitude >= _PLAIN:  # past the Decimal context's 28 digits its text rounds: let it say so
        return str(Decimal(-magnitude if negative else magnitude).scaleb(-places))
    sign = "-" if negative and magnitude else ""
    if places <= 0:
        return f"{sign}{magnitude * 10**-places}" if places else f"{sign}{magnitude}"
    whole, part = divmod(magnitude, _POWERS[places] if places < len(_POWERS) else 10**places)
    return f"{sign}{whole}.{part:0{places}d}"


def _rounded(value: Fraction | Decimal | int | float, rule: RoundingRule, places: int) -> tuple[int, int]:
    """(the value's numerator, for its sign; the magnitude rounded at ``places`` decimals, as an integer)."""
    if type(value) is float and 0 <= places < len(_POWERS):
        # Interval bounds, standard errors: the float product is within 2**-22 of the exact one, so where it
        # is not near the rounding edge its rounding is the exact value's. Near the edge, exact arithmetic.
        scaled_f = abs(value) * _POWERS[places]
        if scaled_f < _FLOAT_EXACT:
            whole = math.floor(scaled_f)
            part = scaled_f - whole
            if rule == "half_up" and abs(part - 0.5) > _EDGE:
                return (-1 if value < 0 else 1), whole + (part > 0.5)
            if rule == "truncate" and _EDGE < part < 1 - _EDGE:
                return (-1 if value < 0 else 1), whole
    n, d = value.as_integer_ratio()
    scaled = abs(n) * (_POWERS[places] if 0 <= places < len(_POWERS) else 10**places)
    return n, _quotient(scaled, d, rule)


def _quotient(scaled: Any, d: Any, rule: RoundingRule) -> Any:
    """``scaled / d`` rounded by ``rule``, exactly: for Python integers, or int64 arrays element by element."""
    if rule == "half_up":
        return (2 * scaled + d) // (2 * d)
    if rule == "truncate":
        return scaled // d
    raise ValueError(f"unknown rounding rule {rule!r}")


def present_floats(values: NDArray[np.float64], places: int = 2, rule: RoundingRule = "half_up") -> list[str | None]:
    """``present_text`` of many floats at once (None for NaN): the figures present intervals, standard errors
    and design effects a batch of units at a time. The same fast path as :func:`_rounded`, over the array;
    what it cannot settle (near the rounding edge, very large) goes through :func:`present_text` itself."""
    if not 0 <= places < len(_POWERS):
        return [None if math.isnan(v) else present_text(v, rule, places) for v in values.tolist()]
    missing = np.isnan(values)
    with np.errstate(over="ignore", invalid="ignore"):  # very large: not settled here, see below
        scaled = np.abs(np.where(missing, 0.0, values)) * _POWERS[places]
        whole = np.floor(scaled)
        part = scaled - whole
    if rule == "half_up":
        settled = np.abs(part - 0.5) > _EDGE
        magnitude = whole + (part > 0.5)
    elif rule == "truncate":
        settled = (part > _EDGE) & (part < 1 - _EDGE)
        magnitude = whole
    else:
        raise ValueError(f"unknown rounding rule {rule!r}")
    settled &= scaled < _FLOAT_EXACT
    signs = np.where(values < 0, "-", "").tolist()
    units, decimals = np.divmod(np.where(settled, magnitude, 0).astype(np.int64), _POWERS[places])
    if places:
        text = f"%s%d.%0{places}d"  # %-formatting: some 40% faster than an f-string with a nested format spec
        out: list[str | None] = [text % (sign if (u or d) else "", u, d)
                                 for sign, u, d in zip(signs, units.tolist(), decimals.tolist(), strict=True)]
    else:
        out = [f"{sign if u else ''}{u}" for sign, u in zip(signs, units.tolist(), strict=True)]
    for k in np.flatnonzero(~settled | missing).tolist():
        out[k] = None if missing[k] else present_text(float(values[k]), rule, places)
    return out


def present_ratios(numerators: NDArray[np.int64], denominators: NDArray[np.int64], rule: RoundingRule = "half_up",
                   places: int = 2) -> list[str]:
    """``present_text(Fraction(a, b), rule, places)`` of many non-negative ratios a/b (b > 0) at once, in
    int64 where it cannot overflow (the others one by one, exactly: a few large ratios — a factor's exact
    index over the lcm of its items' counts — leave the rest of the batch on the fast path)."""
    if places < 0:
        return [present_text(Fraction(int(a), int(b)), rule, places)
                for a, b in zip(numerators.tolist(), denominators.tolist(), strict=True)]
    power = 10**places
    large = (numerators >= 2**62 // (2 * power)) | (denominators >= 2**61)
    some_large = bool(large.any())
    magnitude = _quotient(np.where(large, 0, numerators) * power, np.where(large, 1, denominators), rule)
    if not places:
        out = [str(m) for m in magnitude.tolist()]
    else:
        units, decimals = np.divmod(magnitude, power)
        text = f"%d.%0{places}d"
        out = [text % pair for pair in zip(units.tolist(), decimals.tolist(), strict=True)]
    if some_large:
        for k in np.flatnonzero(large).tolist():
            out[k] = present_text(Fraction(int(numerators[k]), int(denominators[k])), rule, places)
    return out


def present_fractions(ratios: Sequence[tuple[int, int]], rule: RoundingRule = "half_up", places: int = 2) -> list[str]:
    """``present_text(Fraction(n, d), rule, places)`` of many (n, d > 0) at once: :func:`present_ratios` when
    they fit in int64 and none is negative, else one by one in Python integers — the same formulas on n/d as
    it is, never reduced (the rounding of a ratio does not depend on how it is written; exact weighted
    estimates' ratios run to hundreds of digits, and reducing them is most of the work)."""
    try:
        numerators = np.array([n for n, _ in ratios], dtype=np.int64)
        denominators = np.array([d for _, d in ratios], dtype=np.int64)
        if not (numerators < 0).any():
            return present_ratios(numerators, denominators, rule, places)
    except OverflowError:
        pass
    if not 0 <= places < len(_POWERS):
        return [present_text(Fraction(n, d), rule, places) for n, d in ratios]
    power = _POWERS[places]
    return [_written(n < 0, _quotient(abs(n) * power, d, rule), places) for n, d in ratios]
