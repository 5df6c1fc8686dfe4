import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipas_scoring.domain.intervals import Interval, normal_interval, wilson, z_value


def test_wilson_for_40_of_50_by_hand():
    # z = 1.959964, z^2 = 3.841459, z^2/n = 0.0768292, 1 + z^2/n = 1.0768292
    # centre = (0.8 + 3.841459/100) / 1.0768292 = 0.8384146 / 1.0768292 = 0.7785957
    # half   = 1.959964 / 1.0768292 * sqrt(0.16/50 + 3.841459/10000)
    #        = 1.8201253 * sqrt(0.0035841459) = 1.8201253 * 0.0598677 = 0.1089668
    # -> [0.669629, 0.887562]
    interval = wilson(40, 50)
    assert round(interval.lower, 6) == 0.669629
    assert round(interval.upper, 6) == 0.887562


def test_wilson_edges_and_refusals():
    assert wilson(0, 10).lower == 0.0 and wilson(10, 10).upper == 1.0
    # at 0/10: upper = z^2/n / (1 + z^2/n) = 0.3841459 / 1.3841459 = 0.277533
    assert round(wilson(0, 10).upper, 6) == 0.277533
    with pytest.raises(ValueError):
        wilson(0, 0)
    with pytest.raises(ValueError):
        wilson(11, 10)


def test_z_and_normal_interval():
    assert math.isclose(z_value(), 1.959963984540054)
    assert math.isclose(z_value(0.90), 1.6448536269514722)
    interval = normal_interval(0.5, 0.0025)  # 0.5 +- 1.96 * 0.05
    assert math.isclose(interval.lower, 0.5 - 0.0979981992270027)
    assert normal_interval(0.98, 0.01) == Interval(0.98 - 1.959963984540054 * 0.1, 1.0)
    assert interval.scaled(100).contains(50)
    with pytest.raises(ValueError):
        normal_interval(0.5, -1)
    with pytest.raises(ValueError):
        Interval(1, 0)


@given(st.integers(min_value=1, max_value=10**6).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_contains_the_share_and_stays_in_0_1(case):
    successes, n = case
    interval = wilson(successes, n)
    assert 0.0 <= interval.lower <= successes / n <= interval.upper <= 1.0
