"""How the radio-map fit weighs its cross-fitting schemes against each other."""

from __future__ import annotations

import math

import pytest

from heimdall.training.cross_fitting import combined_median_m


def test_equal_medians_score_their_own_value_in_metres() -> None:
    assert combined_median_m([120.0, 120.0]) == pytest.approx(120.0)
    assert combined_median_m([40.0]) == pytest.approx(40.0)


def test_a_large_relative_gain_outweighs_a_few_metres_of_a_large_median() -> None:
    # Random folds 15 m -> 1 m (transmitters heard again at their places) against spatial
    # folds 940 m -> 955 m: the arithmetic mean would keep the first; the fit takes the second.
    assert combined_median_m([1.0, 955.0]) < combined_median_m([15.0, 940.0])
    assert (1.0 + 955.0) / 2 > (15.0 + 940.0) / 2


def test_a_zero_median_does_not_make_the_score_minus_infinity() -> None:
    score = combined_median_m([0.0, 100.0])
    assert math.isfinite(score) and 0.0 < score < 100.0
    assert combined_median_m([]) == math.inf
