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


def test_every_group_is_held_however_small() -> None:
    rng = np.random.default_rng(2)
    # 10,000 Gaussian truths and 200 whose errors are three times what their ellipses say
    # (a place nobody measured): pooled, 2.5 sigma would do; per group, the small one needs
    # its own 3 x 2.448 sigma.
    gaussian = np.sum(rng.standard_normal((10_000, 2)) ** 2, axis=1)
    wide = 9.0 * np.sum(rng.standard_normal((200, 2)) ** 2, axis=1)
    radius_sq = np.concatenate([gaussian, wide])
    groups = np.concatenate([np.zeros(10_000), np.ones(200)])
    k = ellipse95_sigmas(radius_sq, groups)
    assert k == pytest.approx(3 * GAUSSIAN_ELLIPSE95_SIGMAS, rel=0.1)
    assert np.mean(wide <= k * k) >= 0.95 and np.mean(gaussian <= k * k) > 0.999
    assert ellipse95_sigmas(radius_sq) < 2.7


def test_unknown_radii_are_left_out_and_too_few_refused() -> None:
    radius_sq = np.concatenate([np.linspace(0.01, 10.0, 40), [np.nan, np.inf]])
    assert ellipse95_sigmas(radius_sq) == pytest.approx(np.sqrt(radius_sq[37]), rel=1e-9)  # 38 of 40 held
    with pytest.raises(DataError, match="at least 10 held-out samples"):
        ellipse95_sigmas(np.ones(9))
