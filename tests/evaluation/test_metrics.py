"""Tests of evaluation.metrics: error summaries, 2-D Gaussian calibration, ellipses."""

from __future__ import annotations

import numpy as np
import pytest

from heimdall.errors import DataError, InputError
from heimdall.evaluation.metrics import (
    covariance_to_ellipse,
    default_radii_m,
    ellipse_coverage,
    ellipse_polygon_enu,
    error_summary,
    gaussian_nll_2d,
    mahalanobis_sq,
)


def _covariance_m2(sigma_x_m: float, sigma_y_m: float, rho: float) -> np.ndarray:
    off_m2 = rho * sigma_x_m * sigma_y_m
    return np.array([[sigma_x_m**2, off_m2], [off_m2, sigma_y_m**2]])


def _rotated_m2(sigma_major_m: float, sigma_minor_m: float, orientation_deg: float) -> np.ndarray:
    """Covariance whose major axis points `orientation_deg` clockwise from north."""
    theta = np.radians(orientation_deg)
    major = np.array([np.sin(theta), np.cos(theta)])  # east, north
    minor = np.array([np.cos(theta), -np.sin(theta)])
    return sigma_major_m**2 * np.outer(major, major) + sigma_minor_m**2 * np.outer(minor, minor)


def test_error_summary_on_known_array() -> None:
    errors_m = np.arange(1.0, 101.0)  # 1, 2, ..., 100 m
    summary = error_summary(errors_m, [30, 50, 100, 0.5])
    assert summary["n"] == 100
    assert summary["median_error_m"] == pytest.approx(50.5)
    assert summary["mean_error_m"] == pytest.approx(50.5)
    assert summary["rmse_m"] == pytest.approx(np.sqrt(np.mean(errors_m**2)))
    # Linear interpolation: the q-th percentile of 1..100 is 1 + 0.99 q.
    assert summary["p68_error_m"] == pytest.approx(1 + 0.99 * 68)
    assert summary["p90_error_m"] == pytest.approx(1 + 0.99 * 90)
    assert summary["p95_error_m"] == pytest.approx(1 + 0.99 * 95)
    assert summary["accuracy_at_m"] == {"30": 0.30, "50": 0.50, "100": 1.0, "0.5": 0.0}


def test_error_summary_counts_errors_on_the_radius_as_inside() -> None:
    summary = error_summary(np.array([10.0, 30.0, 30.0001, 200.0]), [30.0])
    assert summary["accuracy_at_m"]["30"] == pytest.approx(0.5)


def test_error_summary_rejects_empty_and_invalid_input() -> None:
    with pytest.raises(DataError):
        error_summary(np.array([]), [30])
    with pytest.raises(InputError):
        error_summary(np.array([1.0, np.nan]), [30])
    with pytest.raises(InputError):
        error_summary(np.array([-1.0]), [30])


def test_gaussian_nll_matches_reference_values(reference_values: dict) -> None:
    cases = reference_values["gaussian_nll_2d"]
    delta_m = np.array([[c["dx"], c["dy"]] for c in cases])
    cov_m2 = np.stack([_covariance_m2(c["sigma_x"], c["sigma_y"], c["rho"]) for c in cases])
    expected = np.array([c["value"] for c in cases])
    np.testing.assert_allclose(gaussian_nll_2d(delta_m, cov_m2), expected, rtol=1e-6)


def test_mahalanobis_sq_equals_solve() -> None:
    rng = np.random.default_rng(3)
    factor = rng.normal(size=(50, 2, 2))
    cov_m2 = factor @ np.swapaxes(factor, 1, 2) + 0.1 * np.eye(2)
    delta_m = rng.normal(size=(50, 2))
    expected = np.einsum("ni,ni->n", delta_m, np.linalg.solve(cov_m2, delta_m[:, :, None])[..., 0])
    np.testing.assert_allclose(mahalanobis_sq(delta_m, cov_m2), expected, rtol=1e-10)


def test_non_positive_definite_covariance_is_rejected() -> None:
    with pytest.raises(InputError):
        mahalanobis_sq(np.zeros((1, 2)), np.array([[[1.0, 2.0], [2.0, 1.0]]]))


@pytest.mark.parametrize("k_sigma", [1.0, 2.0])
def test_coverage_of_gaussian_samples_matches_theory(
    k_sigma: float, reference_values: dict
) -> None:
    rng = np.random.default_rng(20240611)
    n = 20_000
    sigma_x_m = rng.uniform(10.0, 5_000.0, n)
    sigma_y_m = rng.uniform(10.0, 5_000.0, n)
    rho = rng.uniform(-0.95, 0.95, n)
    off_m2 = rho * sigma_x_m * sigma_y_m
    cov_m2 = np.stack(
        [np.stack([sigma_x_m**2, off_m2], -1), np.stack([off_m2, sigma_y_m**2], -1)], axis=1
    )
    delta_m = np.einsum("nij,nj->ni", np.linalg.cholesky(cov_m2), rng.standard_normal((n, 2)))
    expected = reference_values["ellipse_coverage_2d_gaussian"][f"{k_sigma:g}"]
    assert expected == pytest.approx(1 - np.exp(-(k_sigma**2) / 2), rel=1e-3)
    assert ellipse_coverage(delta_m, cov_m2, k_sigma) == pytest.approx(expected, abs=0.01)


def test_coverage_of_an_overconfident_covariance_is_low() -> None:
    rng = np.random.default_rng(1)
    delta_m = rng.normal(0.0, 100.0, (5_000, 2))
    cov_m2 = np.broadcast_to(np.eye(2) * 50.0**2, (5_000, 2, 2))  # claims half the spread
    # Inside the claimed 1-sigma ellipse means |d| <= 50 m, i.e. within half a true sigma.
    assert ellipse_coverage(delta_m, cov_m2, 1.0) == pytest.approx(1 - np.exp(-0.125), abs=0.02)


@pytest.mark.parametrize(
    ("cov_m2", "orientation_deg"),
    [
        (np.diag([100.0**2, 10.0**2]), 90.0),  # elongated east-west
        (np.diag([10.0**2, 100.0**2]), 0.0),  # elongated north-south
        (_rotated_m2(100.0, 10.0, 45.0), 45.0),  # toward north-east
        (_rotated_m2(100.0, 10.0, 135.0), 135.0),  # toward south-east / north-west
    ],
)
def test_covariance_to_ellipse_axes_and_orientation(
    cov_m2: np.ndarray, orientation_deg: float
) -> None:
    major_m, minor_m, angle_deg = covariance_to_ellipse(cov_m2[None])
    assert major_m[0] == pytest.approx(100.0)
    assert minor_m[0] == pytest.approx(10.0)
    assert angle_deg[0] == pytest.approx(orientation_deg, abs=1e-9)


def test_covariance_to_ellipse_orientation_range() -> None:
    angles_deg = np.linspace(0.0, 179.0, 50)
    cov_m2 = np.stack([_rotated_m2(300.0, 20.0, a) for a in angles_deg])
    _, _, got_deg = covariance_to_ellipse(cov_m2)
    assert np.all((got_deg >= 0.0) & (got_deg < 180.0))
    np.testing.assert_allclose(got_deg, angles_deg, atol=1e-9)


def test_ellipse_polygon_is_a_closed_ring_on_the_k_sigma_contour() -> None:
    center_m = np.array([1_000.0, -500.0])
    cov_m2 = _rotated_m2(200.0, 50.0, 30.0)
    ring_m = ellipse_polygon_enu(center_m, cov_m2, k_sigma=2.0, n_points=32)
    assert ring_m.shape == (33, 2)
    np.testing.assert_array_equal(ring_m[0], ring_m[-1])
    m2 = mahalanobis_sq(ring_m - center_m, np.broadcast_to(cov_m2, (33, 2, 2)))
    np.testing.assert_allclose(m2, 4.0, rtol=1e-9)
    # The first point lies on the major axis, 2 sigma from the centre.
    assert np.linalg.norm(ring_m[0] - center_m) == pytest.approx(400.0)


def test_default_radii_fit_the_scale_and_keep_the_seed_radii() -> None:
    radii_m = default_radii_m(250_000.0)
    assert radii_m == sorted(set(radii_m))
    assert {30.0, 50.0, 100.0} <= set(radii_m)
    assert {5_000.0, 10_000.0, 20_000.0, 50_000.0, 100_000.0, 200_000.0} <= set(radii_m)
    assert max(radii_m) <= 250_000.0
    small_m = default_radii_m(3_000.0)
    assert {30.0, 50.0, 100.0, 200.0, 500.0, 1_000.0, 2_000.0} <= set(small_m)
    assert max(small_m) <= 3_000.0
    with pytest.raises(InputError):
        default_radii_m(0.0)
