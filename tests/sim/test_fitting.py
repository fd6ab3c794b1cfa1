"""The propagation fit recovers the parameters that made the links."""

from __future__ import annotations

import numpy as np
import pytest

from heimdall.errors import DataError, InputError
from heimdall.sim.fitting import (
    Variogram,
    empirical_variogram,
    fit_exponential_variogram,
    fit_links,
    fit_plain_log_distance,
)


def _links(rng: np.random.Generator, noise_db: float, exponent: float = 2.8):
    num_samples, num_rx = 300, 8
    rx = rng.uniform(0, 3000, (num_rx, 2))
    tx = rng.uniform(0, 3000, (num_samples, 2))
    offsets = rng.normal(0, 8, num_rx)
    offsets -= offsets.mean()
    levels = rng.normal(-50, 3, num_samples)
    s, r = np.meshgrid(np.arange(num_samples), np.arange(num_rx), indexing="ij")
    s, r = s.ravel(), r.ravel()
    distance = np.maximum(np.linalg.norm(tx[s] - rx[r], axis=1), 100.0)
    rss = levels[s] + offsets[r] - 10 * exponent * np.log10(distance / 100.0) + rng.normal(0, noise_db, s.size)
    return distance, rss, r, s, offsets, levels, tx[s]


def test_fit_links_recovers_exponent_offsets_and_levels_without_noise() -> None:
    distance, rss, r, s, offsets, levels, _ = _links(np.random.default_rng(1), 0.0)
    fit = fit_links(distance, rss, r, s, 8)
    assert fit.path_loss_exponent == pytest.approx(2.8, abs=1e-3)
    np.testing.assert_allclose(fit.rx_offset_db, offsets, atol=0.01)
    np.testing.assert_allclose(fit.sample_level_db + fit.intercept_db, levels, atol=0.01)
    assert np.sqrt(np.mean(fit.residual_db**2)) < 0.01
    np.testing.assert_allclose(fit.predict_db(distance, r), rss - (levels[s] - levels.mean()), atol=0.02)


def test_fit_links_matches_dense_least_squares_with_noise() -> None:
    distance, rss, r, s, *_ = _links(np.random.default_rng(2), 6.0)
    fit = fit_links(distance, rss, r, s, 8)
    # Dense two-way fixed effects + slope (one receiver dropped for identifiability).
    design = np.zeros((rss.size, 300 + 7 + 1))
    design[np.arange(rss.size), s] = 1.0
    rows = r > 0
    design[np.flatnonzero(rows), 300 + r[rows] - 1] = 1.0
    design[:, -1] = -10 * np.log10(distance / 100.0)
    coef, *_ = np.linalg.lstsq(design, rss, rcond=None)
    assert fit.path_loss_exponent == pytest.approx(coef[-1], abs=2e-3)
    assert np.sqrt(np.mean(fit.residual_db**2)) == pytest.approx(np.sqrt(np.mean((rss - design @ coef) ** 2)), abs=1e-3)


def test_fit_links_rejects_too_few_and_flat_links() -> None:
    with pytest.raises(DataError, match="at least 3"):
        fit_links(np.array([100.0, 200.0]), np.array([-50.0, -60.0]), np.array([0, 1]), np.array([0, 0]), 2)
    rng = np.random.default_rng(3)
    distance = rng.uniform(100, 3000, 200)
    with pytest.raises(DataError, match="exponent"):
        # RSS rising with distance: no physical exponent.
        fit_links(distance, 10 * np.log10(distance), np.arange(200) % 4, np.arange(200) // 4, 4)
    with pytest.raises(InputError):
        fit_links(np.ones(5), np.ones(4), np.zeros(5, int), np.zeros(5, int), 1)


def test_plain_log_distance_fits_one_line() -> None:
    distance = np.geomspace(100, 5000, 50)
    exponent, intercept = fit_plain_log_distance(distance, -40 - 35 * np.log10(distance / 100))
    assert exponent == pytest.approx(3.5) and intercept == pytest.approx(-40.0)


def test_variogram_of_white_noise_is_flat_at_its_variance() -> None:
    rng = np.random.default_rng(4)
    tx = rng.uniform(0, 1000, (400, 2))
    residual = rng.normal(0, 3.0, 400)
    vario = empirical_variogram(tx, residual, np.zeros(400, int), max_lag_m=800)
    np.testing.assert_allclose(vario.gamma_db2, 9.0, rtol=0.2)
    nugget, sill, _ = fit_exponential_variogram(vario)
    assert nugget + sill == pytest.approx(9.0, rel=0.15)
    assert sill < 0.2 * (nugget + sill)


def test_exponential_variogram_fit_recovers_its_parameters() -> None:
    lag = np.linspace(20, 1000, 30)
    gamma = 4.0 + 25.0 * (1 - np.exp(-lag / 250.0))
    nugget, sill, length = fit_exponential_variogram(Variogram(lag, gamma, np.full(30, 100)))
    assert nugget == pytest.approx(4.0, abs=0.3) and sill == pytest.approx(25.0, rel=0.03)
    assert length == pytest.approx(250.0, rel=0.05)


def test_variogram_pairs_stay_within_a_receiver() -> None:
    # Two receivers with opposite constant residuals: within-receiver differences are 0.
    tx = np.random.default_rng(5).uniform(0, 100, (40, 2))
    residual = np.r_[np.full(20, 5.0), np.full(20, -5.0)]
    vario = empirical_variogram(tx, residual, np.r_[np.zeros(20, int), np.ones(20, int)], max_lag_m=150, num_bins=5)
    np.testing.assert_allclose(vario.gamma_db2, 0.0)


def test_kriging_recovers_a_smooth_field_near_data_and_reverts_far_away() -> None:
    from heimdall.sim.fitting import krige_residuals

    rng = np.random.default_rng(6)
    tx = rng.uniform(0, 1000, (300, 2))
    field = lambda p: 5.0 * np.sin(p[:, 0] / 200.0) * np.cos(p[:, 1] / 250.0)  # noqa: E731
    residual = field(tx) + rng.normal(0, 0.3, 300)
    inside = rng.uniform(100, 900, (50, 2))
    far = np.array([[20_000.0, 20_000.0]])
    mean, variance = krige_residuals(tx, residual, np.zeros(300, int), 2, np.vstack([inside, far]), 0.09, 12.0, 300.0)
    np.testing.assert_allclose(mean[0, :50], field(inside), atol=0.6)
    assert abs(mean[0, 50]) < 1e-6 and variance[0, 50] == pytest.approx(12.0)
    assert variance[0, :50].mean() < 0.15 * 12.0 and variance[0, :50].max() < 0.3 * 12.0
    # A receiver without residuals: nothing known.
    assert np.all(mean[1] == 0.0) and np.all(variance[1] == 12.0)


def test_static_map_lookup_save_and_station_order(tmp_path) -> None:
    from heimdall.errors import NotFoundError
    from heimdall.sim.terrain import StaticMap

    values = np.stack([np.arange(12.0).reshape(3, 4), -np.arange(12.0).reshape(3, 4)])
    smap = StaticMap(values, 100.0, 200.0, 10.0)
    at = np.array([[110.0, 210.0], [115.0, 200.0], [1e6, -1e6]])
    np.testing.assert_allclose(smap.shadowing_db(at)[:, 0], [5.0, 1.5, 3.0])  # bilinear; nearest edge outside
    np.testing.assert_allclose(smap.pair_db(at, np.array([1, 0, 1])), [-5.0, 1.5, -3.0])
    path = smap.save(tmp_path / "m.npz", ["a", "b"])
    again = StaticMap.load(path, ["b", "new", "a"])
    np.testing.assert_allclose(again.values_db[0], values[1])
    np.testing.assert_allclose(again.values_db[1], 0.0)
    np.testing.assert_allclose(again.values_db[2], values[0])
    with pytest.raises(NotFoundError):
        StaticMap.load(tmp_path / "missing.npz", ["a"])
