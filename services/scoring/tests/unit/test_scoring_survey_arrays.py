"""The estimator over moments equals the reference estimator (itself checked against R's ``survey``), and
its sums are exact whichever way they were reached."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sipas_scoring.domain.errors import DesignError
from sipas_scoring.domain.survey import Observation, estimate_ratios
from sipas_scoring.domain.survey_arrays import (
    UNWEIGHTED,
    Groups,
    Moments,
    estimate_arrays,
    estimate_many,
    estimate_moments,
)

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


def fast_estimate(rows, weighted=True, coefficients=None, population=None, lonely="certainty", pool=None,
                  select=None):
    group, groups, y, x = as_arrays(rows, weighted)
    select = np.eye(y.shape[1], dtype=np.int64) if select is None else select
    answering = np.bincount(group, weights=(x @ select).any(axis=1), minlength=len(groups.weight)).astype(np.int64)
    # One more item that no term selects (answered by every other ballot): it must change nothing.
    noise = (np.arange(len(y)) % 2)[:, None].astype(np.int64)
    y, x = np.hstack([y, noise]), np.hstack([x, noise * 2])
    select = np.vstack([select, np.zeros((1, select.shape[1]), dtype=np.int64)])
    return estimate_moments(Moments.of_rows(group, groups, y, x, pool), select, answering, coefficients, population,
                            lonely=lonely)


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
def test_the_estimator_over_moments_equals_the_reference(rows, weighted, with_population):
    observations = [Observation(s, w, y, x) for s, w, y, x in rows]
    population = ({s: 50 + 10 * i for i, s in enumerate("ABCD")} if with_population and weighted else None)
    reference = estimate_ratios(observations, population=population, weighted=weighted, lonely="certainty")
    fast = fast_estimate(rows, weighted, population=population)
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
    fast = fast_estimate(rows, coefficients=coefficients)
    assert fast.estimate == reference.estimate == Fraction(1, 4) * Fraction(5, 7) + Fraction(3, 4) * Fraction(5, 7)
    with pytest.raises(DesignError):  # a stratum of one ballot has no variance unless certainty is chosen
        fast_estimate(rows, lonely="fail")
    with pytest.raises(DesignError):
        empty = np.zeros((0, 1), dtype=np.int64)
        estimate_moments(Moments.of_rows(np.zeros(0, dtype=np.int64), UNWEIGHTED, empty, empty),
                         np.eye(1, dtype=np.int64), np.zeros(1, dtype=np.int64))


@settings(max_examples=100, deadline=None)
@given(samples(), st.integers(2**55, 2**62), st.sampled_from(WEIGHTS))
def test_totals_are_exact_past_int64(rows, huge, weight):
    """A weight whose scaled value times a term total would overflow int64 takes Python's integers."""
    rows = [(s, Fraction(huge * 3 + 1, 7) if s == rows[0][0] else weight, y, x) for s, _, y, x in rows]
    observations = [Observation(s, w, y, x) for s, w, y, x in rows]
    reference = estimate_ratios(observations, lonely="certainty")
    fast = fast_estimate(rows)
    assert fast.estimate == reference.estimate


@settings(max_examples=100, deadline=None)
@given(samples(), st.lists(st.tuples(st.integers(0, 40), st.booleans()), max_size=40))
def test_moments_kept_ballot_by_ballot_equal_moments_from_scratch(rows, moves):
    """Adding and taking ballots away one at a time reaches the same integers as summing the final ballots,
    so the estimate's floats are the same too."""
    group, groups, y, x = as_arrays(rows)
    v = np.hstack([y, x]).astype(np.float64)
    width = v.shape[1]
    sums = np.zeros((len(groups.weight), width), dtype=np.int64)
    cross = np.zeros((len(groups.weight), width, width))
    present = np.zeros(len(rows), dtype=bool)
    for k, on in [*moves, *((k, True) for k in range(len(rows)))]:
        k %= len(rows)
        if present[k] == on:
            continue
        sign = 1 if on else -1
        present[k] = on
        sums[group[k]] += sign * v[k].astype(np.int64)
        cross[group[k]] += sign * np.outer(v[k], v[k])
    scratch = Moments.of_rows(group, groups, y, x)
    assert sums.tolist() == scratch.sums.tolist() and cross.tolist() == scratch.cross.tolist()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(samples(), st.booleans()), min_size=1, max_size=6), st.booleans())
def test_estimates_made_together_are_the_ones_made_alone(batch, with_population):
    """The figures estimate many units at once: each unit's numbers must be exactly those it gets alone (the
    document of a refresh that recomputes some units equals the one that computes them all)."""
    population = {s: 50 + 10 * i for i, s in enumerate("ABCD")} if with_population else None
    select = np.eye(TERMS, dtype=np.int64)
    domains = []
    for rows, weighted in batch:
        group, groups, y, x = as_arrays(rows, weighted)
        answering = np.bincount(group, weights=x.any(axis=1), minlength=len(groups.weight)).astype(np.int64)
        domains.append((Moments.of_rows(group, groups, y, x), answering))
    together = estimate_many(domains, select, population=population, lonely="certainty")
    for domain, found in zip(domains, together, strict=True):
        alone = estimate_many([domain], select, population=population, lonely="certainty")[0]
        if isinstance(alone, Exception):
            assert type(found) is type(alone) and str(found) == str(alone)
        else:
            assert found == alone  # every float bit for bit


def test_a_weight_past_int64_with_nothing_answered_is_refused_as_such():
    """The int64 shortcut for totals must not be taken for a weight int64 cannot hold, answers or not."""
    rows = [("A", Fraction(2**70, 3), (0, 0, 0), (0, 0, 0)), ("A", Fraction(2**70, 3), (0, 0, 0), (0, 0, 0))]
    with pytest.raises(DesignError, match="no term has an answer"):
        fast_estimate(rows)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(samples(), st.booleans()), min_size=2, max_size=6), st.booleans(), st.data())
def test_estimates_from_a_stack_are_the_ones_made_alone(batch, with_population, data):
    """The figures stack the moments of every domain once and estimate each term set over some of them (a
    gather of rows and columns): each domain's numbers must still be exactly those it gets alone."""
    population = {s: 50 + 10 * i for i, s in enumerate("ABCD")} if with_population else None
    domains = []
    for rows, weighted in batch:
        group, groups, y, x = as_arrays(rows, weighted)
        answering = np.bincount(group, weights=x.any(axis=1), minlength=len(groups.weight)).astype(np.int64)
        domains.append((Moments.of_rows(group, groups, y, x), answering))
    starts = np.cumsum([0] + [len(m.rows) for m, _ in domains])
    chosen = data.draw(st.lists(st.integers(0, len(domains) - 1), min_size=1, unique=True))
    at = np.concatenate([np.arange(starts[d], starts[d + 1]) for d in chosen])
    select = np.eye(TERMS, dtype=np.int64)[:, :data.draw(st.integers(1, TERMS))]  # some items unasked
    select = np.vstack([select, np.zeros((1, select.shape[1]), dtype=np.int64)])  # an item no term asks for

    def padded(m):  # the moments with the unasked item's columns (zeros) beside the others
        keep = np.r_[0:TERMS, TERMS + 1:2 * TERMS + 1]
        out_sums = np.zeros((len(m.rows), 2 * TERMS + 2), dtype=np.int64)
        out_sums[:, keep] = m.sums
        out_cross = np.zeros((len(m.rows), 2 * TERMS + 2, 2 * TERMS + 2))
        out_cross[np.ix_(np.arange(len(m.rows)), keep, keep)] = m.cross
        return Moments(m.groups, m.rows, out_sums, out_cross, m.pool)

    wide = [(padded(m), answering) for m, answering in domains]
    sums = np.concatenate([m.sums for m, _ in wide]).astype(np.float64)
    cross = np.concatenate([m.cross for m, _ in wide])
    stacked = estimate_arrays([wide[d] for d in chosen], select, population=population, lonely="certainty",
                              stack=(sums, cross, at))
    for k, d in enumerate(chosen):
        alone = estimate_arrays([wide[d]], select, population=population, lonely="certainty")
        assert str(stacked.errors[k]) == str(alone.errors[0]) and stacked.exact[k] == alone.exact[0]
        for field in ("value", "variance", "lower", "upper", "deff"):
            assert np.array_equal(getattr(stacked, field)[k:k + 1], getattr(alone, field), equal_nan=True)
        assert stacked.n[k] == alone.n[0]


def test_a_stack_of_questionnaire_sized_domains_gives_each_the_bits_it_gets_alone():
    """At the questionnaire's size (28 items; a factor's few, most, every item, items apart), over groups of
    unequal weights: the rows and columns gathered from a stack give each domain the bits it gets alone."""
    rng = np.random.default_rng(7)
    items, domains = 28, []
    for d in range(30):
        count = int(rng.integers(1, 4))
        groups = Groups([Fraction(int(rng.integers(2, 60)), int(rng.integers(1, 4))) for _ in range(count)],
                        [f"s{d}-{g}" for g in range(count)])
        n = int(rng.integers(8, 40))
        group = rng.integers(0, count, n)
        x = (rng.random((n, items)) < 0.9).astype(np.int64)
        y = x * (rng.random((n, items)) < 0.7)
        answering = np.bincount(group, weights=x.any(axis=1), minlength=count).astype(np.int64)
        domains.append((Moments.of_rows(group, groups, y, x), answering))
    sums = np.concatenate([m.sums for m, _ in domains]).astype(np.float64)
    cross = np.concatenate([m.cross for m, _ in domains])
    starts = np.cumsum([0] + [len(m.rows) for m, _ in domains])
    chosen = [3, 4, 9, 17, 18, 29]
    at = np.concatenate([np.arange(starts[d], starts[d + 1]) for d in chosen])
    # a factor's items, most of them, every item (runs of columns: a strided copy), and items apart (a gather)
    for asked in (range(5), range(3, 25), range(items), (0, 2, 5, 9, 27)):
        select = np.zeros((items, len(asked)), dtype=np.int64)
        select[list(asked), range(len(asked))] = 1
        for subset, rows_at in ((chosen, at), (list(range(30)), None)):
            stacked = estimate_arrays([domains[d] for d in subset], select, stack=(sums, cross, rows_at))
            for k, d in enumerate(subset):
                alone = estimate_arrays([domains[d]], select)
                assert stacked.exact[k] == alone.exact[0]
                assert stacked.variance[k] == alone.variance[0] and stacked.deff[k] == alone.deff[0]


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 5), st.data())
def test_exact_sums_of_ratios_in_arrays_are_the_ones_made_one_by_one(terms, data):
    """A weighted estimate's exact point, Σ c_k·Y_k/X_k, is made for every domain of a batch at once in int64
    (each term reduced, the lcm of the denominators, the sum over it): each must be the fraction made one by
    one — and a row whose numbers int64 could not hold comes back None (for Python's integers), never wrong."""
    from sipas_scoring.domain.survey_arrays import _sum_of_ratios, _sums_of_ratios

    size = st.one_of(st.integers(0, 10**4), st.integers(0, 2**62), st.integers(0, 2**63 - 1))
    rows = data.draw(st.lists(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 40), size, size),
                                       min_size=terms, max_size=terms), min_size=1, max_size=8))
    rows = [[(a, b, min(y, x), x) for a, b, y, x in row] for row in rows]  # satisfied never past answered
    a, b, y, x = (np.array([[t[k] for t in row] for row in rows], dtype=np.int64) for k in range(4))
    for row, found in zip(rows, _sums_of_ratios(a, b, y, x), strict=True):
        expected = _sum_of_ratios([(p, q) for p, q, _, _ in row], [t[2] for t in row], [t[3] for t in row])
        assert found is None or found == expected
    small = np.array([[1, 2], [3, 4]], dtype=np.int64)
    assert _sums_of_ratios(np.ones_like(small), np.ones_like(small), small, small * 3) == [Fraction(2, 3)] * 2
    edge = np.array([[2**62 - 1]], dtype=np.int64)  # a numerator (3 * Y) past int64 though the denominator fits
    assert _sums_of_ratios(np.array([[3]]), np.array([[1]]), edge, edge) in ([None], [Fraction(3)])
