"""The widening of a covariance with the time since the nearest training transmission."""

from __future__ import annotations

import numpy as np

from heimdall.evaluation.calibration import seconds_to_nearest, time_widening_factor


def test_the_gap_is_the_distance_in_time_to_the_nearest_training_transmission() -> None:
    rng = np.random.default_rng(0)
    training = rng.uniform(0.0, 1.0e4, size=300)
    queries = np.concatenate([rng.uniform(-2.0e3, 1.2e4, size=200), [np.nan]])
    gap = seconds_to_nearest(queries, training)
    brute = np.abs(queries[:-1, None] - training[None, :]).min(axis=1)
    np.testing.assert_allclose(gap[:-1], brute)
    assert np.isnan(gap[-1])  # a query without a time has no gap
    np.testing.assert_array_equal(seconds_to_nearest(training[:5], training), np.zeros(5))
    # No training time known (NaN): no gap anywhere.
    assert np.isnan(seconds_to_nearest(queries[:3], np.array([np.nan]))).all()


def test_the_widening_grows_with_the_gap_and_levels_off() -> None:
    gap = np.array([0.0, 10.0, 60.0, 600.0, 3.0e7, np.nan])
    factor = time_widening_factor(gap, 2.0, 60.0)
    assert factor[0] == 1.0  # a query amid the campaign keeps its ellipse
    assert np.all(np.diff(factor[:5]) > 0)
    # 1 + a (1 - 1/e) at one time scale; a month later the full 1 + a.
    np.testing.assert_allclose(factor[2], 1.0 + 2.0 * (1.0 - np.exp(-1.0)))
    np.testing.assert_allclose(factor[4], 3.0)
    assert factor[5] == 1.0  # unknown time: as the graph says
    np.testing.assert_array_equal(time_widening_factor(gap, 0.0, 60.0), np.ones(6))
