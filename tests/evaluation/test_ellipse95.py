"""The 95% ellipse: sized on held-out squared Mahalanobis radii, Gaussian or heavy-tailed."""

from __future__ import annotations

import numpy as np
import pytest

from heimdall.errors import DataError
from heimdall.evaluation.calibration import GAUSSIAN_ELLIPSE95_SIGMAS, ellipse95_sigmas


def test_a_calibrated_gaussian_needs_sqrt_of_minus_two_log_five_percent() -> None:
    assert GAUSSIAN_ELLIPSE95_SIGMAS == pytest.approx(2.4477, abs=1e-4)
    offsets = np.random.default_rng(0).standard_normal((100_000, 2))
    radius_sq = np.sum(offsets**2, axis=1)
    k = ellipse95_sigmas(radius_sq)
    assert k == pytest.approx(GAUSSIAN_ELLIPSE95_SIGMAS, abs=0.02)
    assert np.mean(radius_sq <= k * k) == pytest.approx(0.95, abs=1e-4)


def test_heavy_tails_need_a_wider_ellipse_than_the_gaussian_one() -> None:
    rng = np.random.default_rng(1)
    # A bivariate Student-t with 3 degrees of freedom, scaled to unit covariance: its 95%
    # ellipse is wider than 2.45 sigma (2.51).
    nu = 3.0
    mixing = np.sqrt(rng.chisquare(nu, size=(50_000, 1)) / nu)
    offsets = rng.standard_normal((50_000, 2)) / mixing / np.sqrt(nu / (nu - 2))
    radius_sq = np.sum(offsets**2, axis=1)
    k = ellipse95_sigmas(radius_sq)
    # Closed form: r^2 / 2 follows F(2, nu) for a unit-scale t, so k^2 = 2 F^-1(0.95) (nu - 2) / nu.
    f95 = nu / 2 * (0.05 ** (-2 / nu) - 1)  # the F(2, nu) quantile, from its closed-form CDF
    assert k == pytest.approx(np.sqrt(2 * f95 * (nu - 2) / nu), rel=0.02)
    assert k > GAUSSIAN_ELLIPSE95_SIGMAS + 0.03 and np.mean(radius_sq <= k * k) >= 0.95


def test_each_group_counts_equally_whatever_its_size() -> None:
    rng = np.random.default_rng(2)
    # 100 truths all inside a tiny ellipse and 10,000 Gaussian ones: to hold 95% on average
    # the large group needs only 90%, sqrt(-2 ln 0.1) = 2.146 sigma, not its own 2.448.
    radius_sq = np.concatenate([np.full(100, 1e-4), np.sum(rng.standard_normal((10_000, 2)) ** 2, axis=1)])
    groups = np.concatenate([np.zeros(100), np.ones(10_000)])
    assert ellipse95_sigmas(radius_sq, groups) == pytest.approx(np.sqrt(-2 * np.log(0.1)), abs=0.03)
    assert ellipse95_sigmas(radius_sq) == pytest.approx(2.44, abs=0.04)


def test_unknown_radii_are_left_out_and_too_few_refused() -> None:
    radius_sq = np.concatenate([np.linspace(0.01, 10.0, 40), [np.nan, np.inf]])
    assert ellipse95_sigmas(radius_sq) == pytest.approx(np.sqrt(radius_sq[37]), rel=1e-9)  # 38 of 40 held
    with pytest.raises(DataError, match="at least 10 held-out samples"):
        ellipse95_sigmas(np.ones(9))
