import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipas_scoring.domain.rounding import Rounding, format_vi, present


@pytest.mark.parametrize(
    ("value", "rule", "places", "shown"),
    [
        (Fraction(177100, 2000), "truncate", 2, "88.55"),
        (Fraction(78600, 960), "truncate", 2, "81.87"),  # 81.875: half-up would give 81.88
        (Fraction(78600, 960), "half_up", 2, "81.88"),
        (Fraction(53200, 640), "truncate", 2, "83.12"),  # 83.125
        (Fraction(53200, 640), "half_up", 2, "83.13"),
        (Fraction(1, 3), "half_up", 4, "0.3333"),
        (Fraction(2, 3), "half_up", 0, "1"),
        (Fraction(2, 3), "truncate", 0, "0"),
        (Fraction(0), "half_up", 2, "0.00"),
        (Fraction(-5, 1000), "half_up", 2, "-0.01"),  # ties away from zero
        (Fraction(-5, 1000), "truncate", 2, "0.00"),  # toward zero, and no "-0.00"
        (Decimal("82.665"), "half_up", 2, "82.67"),
        (7, "truncate", 2, "7.00"),
    ],
)
def test_present_rounds_the_exact_value(value, rule, places, shown):
    result = present(value, rule, places)
    assert str(result) == shown
    assert result.as_tuple().exponent == -places


def test_float_ties_round_by_their_binary_value():
    # 2.675 is stored as 2.67499999999999982236431605997495353221893310546875
    assert present(2.675, "half_up", 2) == Decimal("2.67")
    assert present(Decimal("2.675"), "half_up", 2) == Decimal("2.68")


def test_rounding_object_and_unknown_rule():
    assert Rounding("truncate", 2).present(Fraction(786 * 100, 960)) == Decimal("81.87")
    with pytest.raises(ValueError):
        Rounding("banker")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        present(Fraction(1), "banker")  # type: ignore[arg-type]


def test_vietnamese_number_style():
    assert format_vi(Decimal("88.55")) == "88,55"
    assert format_vi(Decimal("35268")) == "35.268"
    assert format_vi(Decimal("36630.50")) == "36.630,50"


@given(st.fractions(min_value=0, max_value=1000), st.integers(min_value=0, max_value=6))
def test_truncate_never_exceeds_half_up(value, places):
    truncated = present(value, "truncate", places)
    rounded = present(value, "half_up", places)
    assert truncated <= rounded
    assert rounded - truncated in (Decimal(0), Decimal(1).scaleb(-places))
    assert Fraction(truncated) <= value < Fraction(truncated) + Fraction(1, 10**places)
    assert abs(Fraction(rounded) - value) <= Fraction(1, 2 * 10**places)


@given(st.one_of(st.fractions(), st.floats(allow_nan=False, allow_infinity=False, width=64),
                 st.integers(-10**9, 10**9).map(lambda i: i / 2000),  # floats at and near the rounding edge
                 st.integers(-10**40, 10**40)),  # past 28 digits the Decimal context rounds: the text follows it
       st.sampled_from(["half_up", "truncate"]), st.integers(0, 6))
def test_the_integer_presentation_equals_the_reference(value, rule, places):
    """The figures present with ``fast_rounding`` (a hundred thousand numbers a national refresh): the same
    Decimal as the reference, and the same text as ``str`` of it."""
    from sipas_scoring.domain.fast_rounding import present as fast
    from sipas_scoring.domain.fast_rounding import present_text

    reference = present(value, rule, places)
    assert fast(value, rule, places) == reference and fast(value, rule, places).as_tuple() == reference.as_tuple()
    assert present_text(value, rule, places) == str(reference)


@given(st.lists(st.one_of(st.floats(allow_infinity=False, width=64),
                          st.integers(-10**9, 10**9).map(lambda i: i / 2000)), max_size=30),
       st.sampled_from(["half_up", "truncate"]), st.integers(0, 6))
def test_floats_presented_together_are_each_presented_alone(values, rule, places):
    """The figures present a batch's intervals and errors in one pass: each text is ``present_text``'s, NaN
    (no figure) is None — at the rounding edge too, where the batch hands the value to the exact path."""
    import numpy as np

    from sipas_scoring.domain.fast_rounding import present_floats, present_text

    together = present_floats(np.array(values, dtype=np.float64), places, rule)
    assert together == [None if math.isnan(v) else present_text(v, rule, places) for v in values]


@given(st.lists(st.tuples(st.one_of(st.integers(0, 10**12), st.integers(2**50, 2**63 - 1)),
                          st.one_of(st.integers(1, 10**9), st.integers(2**60, 2**63 - 1))), max_size=30),
       st.sampled_from(["half_up", "truncate"]), st.integers(-1, 6))
def test_ratios_presented_together_are_each_presented_alone(pairs, rule, places):
    """Item, expectation, factor and overall figures present their shares a batch at a time: each text is
    ``present_text``'s of the exact ratio (in int64 where it cannot overflow, the others one by one — a large
    one among them leaves the rest on the fast path)."""
    import numpy as np

    from sipas_scoring.domain.fast_rounding import present_ratios, present_text

    numerators = np.array([a for a, _ in pairs], dtype=np.int64)
    denominators = np.array([b for _, b in pairs], dtype=np.int64)
    together = present_ratios(numerators, denominators, rule, places)
    assert together == [present_text(Fraction(a, b), rule, places) for a, b in pairs]


@given(st.lists(st.tuples(st.one_of(st.integers(-10**6, 10**12), st.integers(2**62, 2**80)),
                          st.one_of(st.integers(1, 10**9), st.integers(2**63, 2**70))), max_size=20),
       st.sampled_from(["half_up", "truncate"]), st.integers(-1, 6), st.integers(1, 10**6))
def test_fractions_presented_together_are_each_presented_alone(pairs, rule, places, common):
    """Weighted figures present their exact values a batch at a time: int64 arrays when every one fits and none
    is negative, else one by one in integers, never reduced — the same texts either way, for a ratio written
    with a common factor too."""
    from sipas_scoring.domain.fast_rounding import present_fractions, present_text

    assert present_fractions(pairs, rule, places) == [present_text(Fraction(a, b), rule, places) for a, b in pairs]
    widened = [(a * common, b * common) for a, b in pairs]
    assert present_fractions(widened, rule, places) == [present_text(Fraction(a, b), rule, places) for a, b in pairs]
