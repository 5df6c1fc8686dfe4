"""Design weights and stratified weighted shares with Taylor-linearisation variance."""

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipas_scoring.domain.errors import DesignError
from sipas_scoring.domain.intervals import z_value
from sipas_scoring.domain.scheme import Ballot, Factor, Instrument, Scheme, five_level_scale
from sipas_scoring.domain.shares import score_shares
from sipas_scoring.domain.survey import Observation, estimate_ratios
from sipas_scoring.domain.weighted_shares import (
    Terms,
    answered_items,
    factor_terms,
    overall_terms,
    share_observations,
)
from sipas_scoring.domain.weights import design_weight, kish_effective_n, nonresponse_adjusted, stratum_weights

# Stratum A: frame 100, 5 sampled, 4 responded (satisfied: 1, 1, 0, 1) -> weight 100/5 * 5/4 = 25
# Stratum B: frame  60, 4 sampled, 3 responded (satisfied: 1, 0, 0)    -> weight  60/4 * 4/3 = 20
FRAME = {"A": 100, "B": 60}
TWO_STRATA = [Observation.single("A", 25, y) for y in (1, 1, 0, 1)] + [
    Observation.single("B", 20, y) for y in (1, 0, 0)
]


def test_design_weights_with_nonresponse():
    assert design_weight(100, 5) == 20
    assert nonresponse_adjusted(Fraction(20), 5, 4) == 25
    assert stratum_weights(FRAME, {"A": 5, "B": 4}, {"A": 4, "B": 3}) == {"A": 25, "B": 20}
    assert stratum_weights(FRAME, {"A": 5, "B": 4}) == {"A": 20, "B": 15}
    # Kish: (4*25 + 3*20)^2 / (4*625 + 3*400) = 25600 / 3700
    assert kish_effective_n([Fraction(25)] * 4 + [Fraction(20)] * 3) == Fraction(256, 37)
    for bad in (lambda: design_weight(3, 5), lambda: design_weight(3, 0), lambda: nonresponse_adjusted(Fraction(1), 4, 0)):
        with pytest.raises(DesignError):
            bad()
    with pytest.raises(DesignError):
        stratum_weights(FRAME, {"C": 1})
    with pytest.raises(DesignError):
        stratum_weights(FRAME, {"A": 5}, {"A": 0})


def test_two_strata_weighted_share_by_hand():
    # Point: X = 4*25 + 3*20 = 160, Y = 3*25 + 1*20 = 95, R = 95/160 = 19/32 = 0.59375
    # Linearised w*z = w*(y - R)/X:  A: 25/160 = 5/32 per unit  -> (5/32)(13/32) =  65/1024 (y=1)
    #                                                            (5/32)(-19/32) = -95/1024 (y=0)
    #                                B: 20/160 = 4/32           ->  52/1024 (y=1), -76/1024 (y=0)
    # A values 65, 65, -95, 65 (/1024): mean 25, deviations 40, 40, -120, 40 -> SS = 19200/1024^2
    # B values 52, -76, -76   (/1024): mean -100/3, deviations 256/3, -128/3, -128/3 -> SS = 98304/9/1024^2
    # V = 4/3 * 19200/1024^2 + 3/2 * 98304/9/1024^2 = (25600 + 16384)/1048576 = 0.0400390625
    estimate = estimate_ratios(TWO_STRATA)
    assert estimate.estimate == Fraction(19, 32)
    assert estimate.variance == pytest.approx(41984 / 1048576, rel=1e-12)
    assert estimate.n == 7
    se = math.sqrt(41984 / 1048576)  # 0.2000976
    assert estimate.interval.lower == pytest.approx(0.59375 - z_value() * se)
    assert estimate.interval.upper == pytest.approx(0.59375 + z_value() * se)
    # SRS of 7 answering ballots: sum w e^2 = 25*(3*13^2 + 19^2)/1024 + 20*(13^2 + 2*19^2)/1024 = 39520/1024,
    # divided by N = 160, times 7/6 for the divisor, divided by n = 7 -> V_srs = 38.59375/960 = 0.04020182
    # deff = 0.0400390625 / 0.0402018229 = 0.995951, effective n = 7 / deff = 7.028455
    assert estimate.design_effect == pytest.approx(0.0400390625 / (38.59375 / 960), rel=1e-12)
    assert estimate.effective_n == pytest.approx(7.028455, abs=1e-6)


def test_two_strata_with_finite_population_correction():
    # A: (1 - 4/100) = 0.96 * 25600/1048576;  B: (1 - 3/60) = 0.95 * 16384/1048576
    # V = (24576 + 15564.8)/1048576 = 0.03828125; V_srs * (1 - 7/160)
    estimate = estimate_ratios(TWO_STRATA, population=FRAME)
    assert estimate.variance == pytest.approx(0.03828125, rel=1e-12)
    assert estimate.design_effect == pytest.approx(0.03828125 / (38.59375 / 960 * (1 - 7 / 160)), rel=1e-12)


def test_unweighted_estimate_of_the_same_sample():
    # 4 of 7 satisfied, SRS variance p(1-p)/(n-1) = (4/7)(3/7)/6 = 0.0408163
    estimate = estimate_ratios(TWO_STRATA, population=FRAME, weighted=False)
    assert estimate.estimate == Fraction(4, 7)
    assert estimate.variance == pytest.approx(Fraction(4, 7) * Fraction(3, 7) / 6)
    assert estimate.design_effect == pytest.approx(1.0)


def test_ratio_with_ballots_that_did_not_answer():
    # y/x = satisfied/valid answers per ballot; one ballot answered nothing (x = 0)
    observations = [Observation.single("A", 1, y, x) for y, x in ((2, 3), (1, 1), (0, 2), (0, 0))]
    estimate = estimate_ratios(observations)
    assert estimate.estimate == Fraction(3, 6)
    assert estimate.n == 3
    # e = y - x/2: 0.5, 0.5, -1, 0; X = 6; z = e/6; one stratum of 4, weight 1:
    # mean z = 0, SS = (0.25 + 0.25 + 1)/36 -> V = 4/3 * 1.5/36 = 1/18
    assert estimate.variance == pytest.approx(1 / 18)


def test_single_stratum_equal_weights_has_design_effect_one():
    pairs = ((1, 0), (0, 0), (0, 1), (1, 1), (1, 1))
    observations = [Observation("S", Fraction(7, 2), pair, (1, 1)) for pair in pairs]
    estimate = estimate_ratios(observations)
    assert estimate.estimate == Fraction(3, 5)  # mean of 3/5 and 3/5
    assert estimate.design_effect == pytest.approx(1.0)


def test_design_refusals():
    with pytest.raises(DesignError):
        estimate_ratios([])
    with pytest.raises(DesignError):
        estimate_ratios([Observation.single("A", 1, 1), Observation.single("B", 1, 0), Observation.single("B", 1, 1)])
    lonely = estimate_ratios(
        [Observation.single("A", 1, 1), Observation.single("B", 1, 0), Observation.single("B", 1, 1)],
        lonely="certainty",
    )
    assert lonely.estimate == Fraction(2, 3)
    with pytest.raises(DesignError):
        estimate_ratios(TWO_STRATA, population={"A": 100})
    with pytest.raises(DesignError):
        estimate_ratios([Observation.single("A", 1, 0, 0), Observation.single("A", 1, 0, 0)])
    with pytest.raises(DesignError):
        estimate_ratios([Observation("A", Fraction(1), (1, 0), (1, 0))] * 2, coefficients=[Fraction(1, 2)] * 2)
    with pytest.raises(DesignError):
        Observation.single("A", 0, 1)


INSTRUMENT = Instrument(
    five_level_scale(),
    (Factor("F1", ("a", "b"), overall_item="f1"), Factor("F2", ("c",), overall_item="f2")),
    overall_item="o",
)
answer = st.one_of(st.none(), st.integers(min_value=1, max_value=5))
rows = st.lists(
    st.fixed_dictionaries({"a": answer, "b": answer, "c": answer, "f1": answer, "f2": answer, "o": answer}),
    min_size=2,
    max_size=25,
)
schemes = st.builds(
    Scheme,
    factor_index=st.sampled_from(["mean_items", "pooled", "overall_item"]),
    overall_index=st.sampled_from(["mean_factors", "pooled", "overall_item"]),
)


@given(rows, schemes, st.fractions(min_value=Fraction(1, 10), max_value=1000), st.lists(st.sampled_from("ABC"), min_size=25, max_size=25))
def test_equal_weights_reproduce_the_unweighted_index(answers, scheme, weight, strata):
    ballots = [Ballot(str(i), a) for i, a in enumerate(answers)]
    design = {b.ballot_id: (strata[i], weight) for i, b in enumerate(ballots)}
    unweighted = score_shares(INSTRUMENT, scheme, ballots)
    answered = answered_items(ballots)
    figures = [(overall_terms(INSTRUMENT, scheme, answered), unweighted.overall.value)] + [
        (factor_terms(f, scheme, answered), unweighted.factors[f.code].value) for f in INSTRUMENT.factors
    ]
    for terms, value in figures:
        if value is None:
            assert terms == Terms()
            continue
        observations = share_observations(ballots, terms, INSTRUMENT.satisfied_levels, design)
        weighted = estimate_ratios(observations, list(terms.coefficients), lonely="certainty")
        assert weighted.estimate * 100 == value
        plain = estimate_ratios(observations, list(terms.coefficients), weighted=False)
        assert plain.estimate == weighted.estimate
        assert 0 <= weighted.interval.lower <= float(weighted.estimate) <= weighted.interval.upper <= 1


def test_share_observations_need_a_design_for_every_ballot():
    ballots = [Ballot("1", {"a": 5})]
    terms = factor_terms(INSTRUMENT.factors[0], Scheme(), answered_items(ballots))
    assert terms == Terms((("a",),), (Fraction(1),))
    with pytest.raises(DesignError):
        share_observations(ballots, terms, {4, 5}, {})
    with pytest.raises(DesignError):
        share_observations(ballots, Terms(), {4, 5}, {"1": ("A", Fraction(1))})
