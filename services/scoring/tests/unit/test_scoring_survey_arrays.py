"""The columnar estimator equals the reference estimator (itself checked against R's ``survey``)."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
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
