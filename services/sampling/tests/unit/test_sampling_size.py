from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipas_sampling.domain.errors import InvalidParameter
from sipas_sampling.domain.size import (
    Cochran,
    Slovin,
    cochran,
    cochran_n0,
    margin_of_error,
    slovin,
    stratified_margin,
)


def test_slovin_hand_computed():
    assert slovin(400, Decimal("0.05")) == 200   # 400 / (1 + 1) exactly
    assert slovin(1000) == 286                   # 1000 / 3.5 = 285.71…
    assert slovin(10_000) == 385                 # 10000 / 26 = 384.6…
    assert slovin(400, 0.05) == slovin(400, "0.05") == slovin(400, Fraction(1, 20)) == 200


def test_cochran_hand_computed():
    assert cochran_n0() == Fraction("384.16")    # 1.96² · 0.25 / 0.0025
    assert cochran(1000) == 278                  # 384.16 / 1.38316 = 277.74…
    assert cochran(None) == 385
    assert cochran(1000, margin="0.03") == 517   # n0 = 1067.11…, 1067.11 / 2.06611 = 516.48…


def test_cochran_ceiling_is_of_the_exact_value():
    # In floating point n = 280.00000000000006 here and the ceiling would be 281.
    assert 384.16 / (1 + (384.16 - 1) / 1030) > 280
    assert cochran(1030) == 280


@pytest.mark.parametrize("population", [0, 1, 2, 5, 30, 100])
def test_never_more_than_the_population(population):
    assert slovin(population) <= population
    assert cochran(population) <= population
    assert cochran(population, margin="0.001") == population


def test_rules_as_objects():
    assert Slovin()(400) == 200 and Slovin(Decimal("0.1"))(1000) == 91
    assert Cochran()(1000) == 278 and Cochran(margin=0.03)(1000) == 517


@pytest.mark.parametrize("kwargs", [{"margin": 0}, {"margin": 1}, {"margin": "-0.05"}, {"p": 0}, {"p": "1.5"},
                                    {"z": 0}, {"margin": "five"}])
def test_parameters_are_checked(kwargs):
    with pytest.raises(InvalidParameter):
        cochran(100, **kwargs)


def test_population_must_be_a_count():
    for bad in (-1, 2.5, True):
        with pytest.raises(InvalidParameter):
            slovin(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        Slovin(Decimal(2))


def test_margin_of_error():
    assert margin_of_error(1000, 278) == Decimal("0.049968")
    assert margin_of_error(100, 100) == Decimal("0.000000")
    assert margin_of_error(100, 0) is None
    # a huge population (FPC ≈ 1): 1.96 · sqrt(0.25 / 385) = 0.0499459…, just under 5%
    assert margin_of_error(10**12, 385) == Decimal("0.049946")
    with pytest.raises(InvalidParameter):
        margin_of_error(10, 11)


def test_stratified_margin():
    # one stratum: the same as SRS
    assert stratified_margin([(1000, 278)]) == margin_of_error(1000, 278)
    # two equal strata, equal samples: 1.96 · sqrt(2 · ¼ · 0.25/139 · 361/499) = 0.0499928…
    # (SRS of 278 from 1000 gives 0.049968: the FPC is taken per stratum)
    assert stratified_margin([(500, 139), (500, 139)]) == Decimal("0.049993")
    assert stratified_margin([(500, 139), (500, 0)]) is None
    assert stratified_margin([(500, 139), (0, 0)]) == margin_of_error(500, 139)
    assert stratified_margin([(10, 10), (20, 20)]) == Decimal("0.000000")


@given(st.integers(min_value=1, max_value=200_000))
def test_cochran_size_delivers_its_margin(population):
    n = cochran(population)
    assert 1 <= n <= population
    achieved = margin_of_error(population, n)
    assert achieved is not None and achieved <= Decimal("0.05")
    if n > 1:  # and one unit fewer would not
        fewer = margin_of_error(population, n - 1)
        assert fewer is not None and fewer > Decimal("0.05")


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=1, max_value=30))
def test_slovin_is_the_exact_ceiling(population, percent):
    e = Fraction(percent, 100)
    n = slovin(population, e)
    exact = Fraction(population) / (1 + population * e * e)
    assert n - 1 < exact <= n
