"""The oracle of synthetic data: grid maximum likelihood that knows the simulator's world.

A synthetic dataset is drawn from a scenario whose static part is fixed by the scenario and
its seed: path loss, each station's terrain-shadowing field (`TerrainField` of
`terrain_seed`), DEM diffraction, receiver offsets and detection rules. The oracle knows all
of it; only the transmitter's position and power and the per-transmission randomness
(shadowing, fading, calibration noise) are unknown. Its error is what the physics leaves to
any estimator on that network, a yardstick beside the CRLB (which assumes a plain
log-distance model and no terrain field).

Model per present receiver r of a sample: rss_r = P + m_r(x) + e_r, e_r ~ N(0, sigma^2)
i.i.d., with m_r(x) = G_r - L(x, r) + T_r(x) + o_r the known static mean (dB). P is profiled
out (its ML value, the mean of rss - m over heard receivers); a present receiver that did
not hear adds -log Phi((threshold_r - P - m_r(x)) / sigma). Search: a coarse grid over the
simulated area, then local grids at a tenth and a hundredth of its step around the best point.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr

from heimdall.data.layout import SampleArrays
from heimdall.sim import propagation
from heimdall.sim.scenario import NetworkGeometry, ScenarioConfig, path_loss_db

__all__ = ["oracle_sigma_db", "oracle_ml"]

_COARSE_CELLS = 80
_FINE_HALF = 6


def oracle_sigma_db(config: ScenarioConfig) -> float:
    """Standard deviation (dB) of what the oracle does not know about one link: shadowing
    drawn per transmission, calibration noise and (looks-averaged) fading."""
    fade = propagation.fading_gain_db(np.random.default_rng(0), config.fading_k_factor_db, 100_000, config.fading_looks)
    a = config.shadowing_sigma_db
    b = config.shadowing_sigma_max_db if config.shadowing_sigma_max_db is not None else a
    variance = (a * a + a * b + b * b) / 3.0 + config.calibration_sigma_db**2 + float(np.var(fade))
    return float(np.sqrt(max(variance, 1e-6)))


def _static_mean_db(points_m: np.ndarray, geometry: NetworkGeometry, config: ScenarioConfig) -> np.ndarray:
    """m_r(x) [G, R] (dB): everything but the transmit power and the random draws."""
    delta = np.empty((points_m.shape[0], geometry.rx_position_m.shape[0], 3))
    delta[..., :2] = points_m[:, None, :] - geometry.rx_position_m[None, :, :2]
    delta[..., 2] = config.tx_height_m - geometry.rx_position_m[None, :, 2]
    distance_m = np.sqrt(np.sum(delta**2, axis=-1))
    exponent = None
    if config.path_loss_exponent_max is not None:
        # A randomised exponent is unknown per sample: the oracle takes its mean.
        exponent = 0.5 * (config.path_loss_exponent + config.path_loss_exponent_max)
    mean = geometry.rx_gain_dbi[None, :] - path_loss_db(distance_m, geometry, config, exponent)
    mean = mean + geometry.terrain.shadowing_db(points_m)
    if geometry.dem is not None:
        mean = mean - geometry.dem.link_features(points_m, geometry.rx_position_m, config.tx_height_m).diffraction_loss_db
    if geometry.static_map is not None:
        mean = mean + geometry.static_map.shadowing_db(points_m)
    if geometry.receivers is not None:
        mean = mean + geometry.receivers.offset_db[None, :]
    return mean


def _thresholds_db(geometry: NetworkGeometry, config: ScenarioConfig) -> np.ndarray:
    """Per receiver [R], the reported level (dB, same scale as m) below which it is not heard."""
    noise = propagation.noise_floor_dbm(geometry.bandwidth_hz, geometry.noise_figure_db)
    threshold = noise + config.min_snr_db
    if geometry.receivers is not None:
        knobs = geometry.receivers
        threshold = np.where(np.isfinite(knobs.threshold_db), knobs.threshold_db, threshold + knobs.offset_db)
    return np.asarray(threshold, dtype=np.float64)


def _costs(mean_db: np.ndarray, rss: np.ndarray, heard: np.ndarray, censored: np.ndarray, threshold_db: np.ndarray, sigma_db: float) -> np.ndarray:
    """Negative log-likelihood [n, G] of samples (rows) at points with static means
    `mean_db` [G, R] (shared) or [n, G, R] (per sample)."""
    w = heard.astype(np.float64)
    k = np.maximum(w.sum(axis=1), 1.0)
    if mean_db.ndim == 2:
        resid_sum = (w * rss).sum(axis=1)[:, None] - w @ mean_db.T
        resid_sq = (w * rss * rss).sum(axis=1)[:, None] - 2.0 * (w * rss) @ mean_db.T + w @ (mean_db**2).T
    else:
        diff = rss[:, None, :] - mean_db
        resid_sum = np.einsum("nr,ngr->ng", w, diff)
        resid_sq = np.einsum("nr,ngr->ng", w, diff * diff)
    power = resid_sum / k[:, None]
    cost = (resid_sq - k[:, None] * power**2) / (2.0 * sigma_db**2)
    for r in np.flatnonzero(censored.any(axis=0)):
        rows = np.flatnonzero(censored[:, r])
        m = mean_db[None, :, r] if mean_db.ndim == 2 else mean_db[rows, :, r]
        cost[rows] -= log_ndtr((threshold_db[r] - power[rows] - m) / sigma_db)
    return cost


def oracle_ml(samples: SampleArrays, geometry: NetworkGeometry, config: ScenarioConfig, block: int = 256) -> np.ndarray:
    """Oracle position estimates [N, 2] (east/north metres in the dataset's own frame);
    NaN for a sample no receiver heard. `samples` must use the dataset's station numbering."""
    n, slots = samples.rx_id.shape
    r_total = geometry.rx_position_m.shape[0]
    # Scatter each sample's slots onto the network's stations (the simulator's layout).
    rss = np.zeros((n, r_total))
    heard = np.zeros((n, r_total), dtype=bool)
    present = np.zeros((n, r_total), dtype=bool)
    rows, cols = np.nonzero((samples.rx_id >= 0) & (samples.rx_id < r_total))
    station = samples.rx_id[rows, cols]
    heard[rows, station] = samples.heard[rows, cols]
    present[rows, station] = samples.present[rows, cols]
    rss[rows, station] = np.where(samples.heard[rows, cols], samples.rss_dbm[rows, cols], 0.0)
    censored = present & ~heard & heard.any(axis=1, keepdims=True)
    sigma_db = oracle_sigma_db(config)
    threshold_db = _thresholds_db(geometry, config)
    east_min, east_max, north_min, north_max = geometry.bounds_m
    step_m = max(east_max - east_min, north_max - north_min) / _COARSE_CELLS
    grid_e, grid_n = np.meshgrid(np.arange(east_min, east_max + step_m / 2, step_m), np.arange(north_min, north_max + step_m / 2, step_m))
    points = np.column_stack([grid_e.ravel(), grid_n.ravel()])
    coarse_mean = _static_mean_db(points, geometry, config)
    offsets = np.arange(-_FINE_HALF, _FINE_HALF + 1, dtype=np.float64)
    off_e, off_n = np.meshgrid(offsets, offsets)
    unit_offsets = np.column_stack([off_e.ravel(), off_n.ravel()])
    low, high = np.array([east_min, north_min]), np.array([east_max, north_max])
    best = np.full((n, 2), np.nan)
    for start in range(0, n, block):
        sl = slice(start, start + block)
        cost = _costs(coarse_mean, rss[sl], heard[sl], censored[sl], threshold_db, sigma_db)
        found = points[np.argmin(cost, axis=1)]
        # Two local passes, at a tenth and a hundredth of the coarse step.
        for fine_step in (step_m / 10.0, step_m / 100.0):
            fine = np.clip(found[:, None, :] + fine_step * unit_offsets[None], low, high)  # [b, F, 2]
            fine_mean = _static_mean_db(fine.reshape(-1, 2), geometry, config).reshape(fine.shape[0], fine.shape[1], r_total)
            fine_cost = _costs(fine_mean, rss[sl], heard[sl], censored[sl], threshold_db, sigma_db)
            found = fine[np.arange(fine.shape[0]), np.argmin(fine_cost, axis=1)]
        best[sl] = found
    return np.where(heard.any(axis=1)[:, None], best, np.nan)
