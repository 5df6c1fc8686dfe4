"""The columnar estimator equals the reference estimator (itself checked against R's ``survey``)."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sipas_scoring.domain.errors import DesignError
from sipas_scoring.domain.survey import Observation, estimate_ratios
from sipas_scoring.domain.survey_arrays import UNWEIGHTED, Groups, estimate_arrays

TERMS = 3
WEIGHTS = [Fraction(5, 2), Fraction(20), Fraction(7, 3), Fraction(1)]


@st.composite
def samples(draw):
    strata = draw(st.lists(st.sampled_from("ABCD"), min_size=1, max_size=4, unique=True))
    rows = []
    for stratum in strata:
        weight = draw(st.sampled_from(WEIGHTS))
        for _ in range(draw(st.integers(2, 8))):
            pairs = [draw(st.sampled_from([(0, 0), (0, 1), (1, 1), (3, 4), (0, 2)])) for _ in range(TERMS)]
            rows.append((stratum, weight, tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)))
    if not any(any(x) for *_, x in rows):
        rows[0] = (rows[0][0], rows[0][1], (1,) * TERMS, (1,) * TERMS)
    return rows


def as_arrays(rows, weighted=True):
    keys = sorted({(s, w) for s, w, _, _ in rows}) if weighted else [("all", Fraction(1))]
    index = {k: i for i, k in enumerate(keys)}
    group = np.array([index[(s, w)] if weighted else 0 for s, w, _, _ in rows], dtype=np.int64)
    groups = Groups([w for _, w in keys], [s for s, _ in keys]) if weighted else UNWEIGHTED
    y = np.array([r[2] for r in rows], dtype=np.int64)
    x = np.array([r[3] for r in rows], dtype=np.int64)
    return group, groups, y, x


def close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15)


@settings(max_examples=150, deadline=None)
@given(samples(), st.booleans(), st.booleans())
# Found by hypothesis: every ballot's linearised value is the same (no spread), up to float noise of 1e-35;
# the design effect is 0/0, so None in both (the reference used to divide the noise and say 1.0).
@example([("A", Fraction(5, 2), (0, 0, 0), (1, 0, 0)), ("A", Fraction(5, 2), (0, 0, 3), (0, 1, 4)),
          ("A", Fraction(5, 2), (0, 3, 0), (0, 4, 1))], False, False)
def test_the_columnar_estimator_equals_the_reference(rows, weighted, with_population):
    observations = [Observation(s, w, y, x) for s, w, y, x in rows]
    population = ({s: 50 + 10 * i for i, s in enumerate("ABCD")} if with_population and weighted else None)
    reference = estimate_ratios(observations, population=population, weighted=weighted, lonely="certainty")
    fast = estimate_arrays(*as_arrays(rows, weighted), population=population, lonely="certainty")
    assert fast.estimate == reference.estimate  # exact, fraction for fraction
    assert fast.n == reference.n
    assert close(fast.variance, reference.variance)
    assert close(fast.design_effect, reference.design_effect)
    assert close(fast.interval.lower, reference.interval.lower) and close(fast.interval.upper, reference.interval.upper)


def test_explicit_coefficients_and_refusals():
    rows = [("A", Fraction(2), (1, 0), (1, 1)), ("A", Fraction(2), (0, 1), (1, 1)), ("B", Fraction(3), (1, 1), (1, 1))]
    coefficients = [Fraction(1, 4), Fraction(3, 4)]
    observations = [Observation(s, w, y, x) for s, w, y, x in rows]
    reference = estimate_ratios(observations, coefficients, lonely="certainty")
    fast = estimate_arrays(*as_arrays(rows), coefficients, lonely="certainty")
    assert fast.estimate == reference.estimate == Fraction(1, 4) * Fraction(5, 7) + Fraction(3, 4) * Fraction(5, 7)
    with pytest.raises(DesignError):  # a stratum of one ballot has no variance unless certainty is chosen
        estimate_arrays(*as_arrays(rows))
    with pytest.raises(DesignError):
        estimate_arrays(np.zeros(0, dtype=np.int64), UNWEIGHTED, np.zeros((0, 1), dtype=np.int64),
                        np.zeros((0, 1), dtype=np.int64))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2**40), st.integers(-5, 5)), min_size=1, max_size=60),
       st.booleans())
def test_group_sums_are_exact_integers_whichever_way_they_are_added(rows, huge):
    from sipas_scoring.domain.survey_arrays import _group_sums

    group = np.array([g for g, _, _ in rows], dtype=np.int64)
    # huge: every value past 2**53 (float64 would round them), so the exact fallback must be taken
    values = np.array([[2**53 + a * 2**16 if huge else a % 1000, b] for _, a, b in rows], dtype=np.int64)
    expected = [[sum(int(v[k]) for g2, v in zip(group.tolist(), values, strict=True) if g2 == g) for k in range(2)]
                for g in range(4)]
    assert _group_sums(group, values, 4).tolist() == expected
