"""Ellipse calibration of a radio map on out-of-fold predictions (`training.radio_map_calibration`):
errors drawn from known Gaussians must come out covered at 39.3% / 86.5%, with the scale and
the novelty widening that generated them."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from heimdall.evaluation.metrics import mahalanobis_sq
from heimdall.models.radio_map import NOVELTY_CAP_DB, RadioMapConfig, RadioMapNet
from heimdall.evaluation.calibration import time_widening_factor
from heimdall.training.radio_map_calibration import (
    calibrate_ellipses,
    calibrate_time_widening,
    coverage_misfit,
    floored_covariance,
    novelty_factor,
)
from heimdall.training.radio_map_heldout import HeldOut, posterior_moments

STEP_M = 10.0
KEY = (2.0, 1.0e-2)
TARGET_1, TARGET_2 = 1.0 - math.exp(-0.5), 1.0 - math.exp(-2.0)


def _held_out(rng: np.random.Generator, n: int, error_scale: np.ndarray, nearest_db: np.ndarray) -> HeldOut:
    """Gaussian posteriors (centres within +-50 m, sd 30-80 m) on a 10 m grid; each truth drawn
    from its posterior's Gaussian with the sd times `error_scale`."""
    axis = np.arange(-400.0, 400.0 + STEP_M / 2, STEP_M)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    centre = rng.uniform(-50.0, 50.0, size=(n, 2))
    sd_m = rng.uniform(30.0, 80.0, size=n)
    log_likelihood = -0.5 * ((grid[None] - centre[:, None]) ** 2).sum(-1) / sd_m[:, None] ** 2
    truth = centre + rng.normal(size=(n, 2)) * (sd_m * error_scale)[:, None]
    zeros = torch.zeros(n, len(grid), dtype=torch.float64)
    no_neighbours = torch.zeros(n, 0, dtype=torch.int64)
    return HeldOut(truth, torch.from_numpy(grid), torch.zeros(len(grid), dtype=torch.float64),
                   torch.from_numpy(log_likelihood), {KEY: zeros}, nearest_db, no_neighbours,
                   torch.zeros(n, 0, 2, dtype=torch.float64), torch.zeros(n, 0, dtype=torch.float64))


def _coverage(d2: np.ndarray) -> tuple[float, float]:
    return float(np.mean(d2 <= 1.0)), float(np.mean(d2 <= 4.0))


@pytest.mark.parametrize("seed", [0, 1])
def test_errors_twice_the_posterior_spread_are_covered_at_every_spread(seed: int) -> None:
    rng = np.random.default_rng(seed)
    folds = [_held_out(rng, 400, np.full(400, 2.0), np.zeros(400)) for _ in range(3)]
    uncalibrated = np.concatenate([
        mahalanobis_sq(f.truth_m - mean, covariance)
        for f in folds for mean, covariance in [posterior_moments(f, KEY, 1.0, 1.0, 1.0)]
    ])
    # Errors twice the spread: the raw 1-sigma ellipse holds 1 - exp(-1/8) = 12%.
    assert _coverage(uncalibrated)[0] < 0.2
    calibration = calibrate_ellipses(folds, [0, 0, 1], KEY, 1.0, 1.0, STEP_M)
    inside_1, inside_2 = _coverage(calibration.mahalanobis_sq)
    assert abs(inside_1 - TARGET_1) < 0.03 and abs(inside_2 - TARGET_2) < 0.03, (inside_1, inside_2)
    # Scale, floor and covariance temperature trade off within sampling noise, but no choice
    # may leave the tight posteriors or the wide ones badly covered.
    spread_m = np.concatenate([np.linalg.det(posterior_moments(f, KEY, 1.0, 1.0, 1.0)[1]) ** 0.25 for f in folds])
    for half in (spread_m < 55.0, spread_m >= 55.0):
        inside_1, inside_2 = _coverage(calibration.mahalanobis_sq[half])
        assert abs(inside_1 - TARGET_1) < 0.07 and abs(inside_2 - TARGET_2) < 0.07, (inside_1, inside_2)


def test_errors_that_grow_with_novelty_widen_the_novel_queries() -> None:
    rng = np.random.default_rng(1)
    nearest = [rng.uniform(0.0, 8.0, size=400) for _ in range(3)]
    folds = [_held_out(rng, 400, np.sqrt(novelty_factor(d, 2.0)), d) for d in nearest]
    calibration = calibrate_ellipses(folds, [0, 1, 1], KEY, 1.0, 1.0, STEP_M)
    assert calibration.novelty_db > 0.0
    d = np.concatenate(nearest)
    for half in (d < 4.0, d >= 4.0):
        inside_1, inside_2 = _coverage(calibration.mahalanobis_sq[half])
        assert abs(inside_1 - TARGET_1) < 0.08 and abs(inside_2 - TARGET_2) < 0.08, (inside_1, inside_2)
    # Without the widening no single scale serves both halves: the novel one is under-covered.
    plain = calibrate_ellipses([dataclasses.replace(f, nearest_db=np.zeros_like(f.nearest_db)) for f in folds],
                               [0, 1, 1], KEY, 1.0, 1.0, STEP_M)
    assert _coverage(plain.mahalanobis_sq[d >= 4.0])[1] < TARGET_2 - 0.1


def test_the_runtime_widens_as_the_calibration_assumed() -> None:
    net = RadioMapNet(RadioMapConfig(num_stations=1, grid_rows=3, grid_cols=3, num_fingerprints=1))
    axis = torch.tensor([-100.0, 0.0, 100.0])
    with torch.no_grad():
        net.grid_m.copy_(torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1).reshape(-1, 2))
        net.novelty_db.fill_(2.0)
    nearest_db = np.array([0.0, 3.0, 30.0])  # the last beyond the cap
    flat = torch.zeros(3, 9)
    _, covariance = net.summarize(flat, flat, torch.from_numpy(nearest_db).float())
    ratio = (covariance[:, 0, 0] / covariance[0, 0, 0]).double().numpy()
    np.testing.assert_allclose(ratio, novelty_factor(nearest_db, 2.0), rtol=1e-5)
    assert ratio[2] == pytest.approx(1.0 + (NOVELTY_CAP_DB / 2.0) ** 2, rel=1e-5)


def test_the_runtime_floors_and_widens_the_covariance_the_calibration_scored() -> None:
    """The fit scores each setting on floored_covariance; the deployed graph must produce the
    same matrix, floor included in the widening, or its coverage is not the one calibrated."""
    net = RadioMapNet(RadioMapConfig(num_stations=1, grid_rows=3, grid_cols=3, num_fingerprints=1))
    axis = torch.tensor([-100.0, 0.0, 100.0])
    floor_m, step_m, novelty_db, scale = 60.0, 100.0, 2.0, 0.3
    with torch.no_grad():
        net.grid_m.copy_(torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1).reshape(-1, 2))
        net.grid_step_m.fill_(step_m)
        net.covariance_floor_m2.fill_(floor_m**2)
        net.novelty_db.fill_(novelty_db)
        net.covariance_scale.fill_(scale)
    nearest_db = np.array([0.0, 3.0, 6.0])
    flat = torch.zeros(3, 9)
    position, covariance = net.summarize(flat, flat, torch.from_numpy(nearest_db).float())
    # A flat posterior over the 3 x 3 grid: variance 2/3 x 100^2 m^2 along each axis about the centre.
    assert torch.allclose(position, torch.zeros(3, 2), atol=1e-3)
    raw = np.repeat((2.0 / 3.0 * 100.0**2 * np.eye(2))[None], 3, axis=0)
    expected = scale * floored_covariance(raw, floor_m, step_m, novelty_factor(nearest_db, novelty_db))
    np.testing.assert_allclose(covariance.double().numpy(), expected, rtol=1e-4)
    # The floor widens too: at 3 dB from training (factor 3.25) the floor alone adds 3.25 x 60^2 m^2.
    assert expected[1, 0, 0] - expected[0, 0, 0] * 3.25 == pytest.approx(0.0, abs=1e-6)


def _calibrated_radii(n: int) -> np.ndarray:
    """Squared Mahalanobis radii of n truths from a calibrated 2-D Gaussian, at its exact
    quantiles (a chi-square with 2 degrees of freedom): 39.3% within 1, 86.5% within 4."""
    return -2.0 * np.log1p(-(np.arange(n) + 0.5) / n)


def test_ellipses_of_later_transmissions_widen_by_what_their_held_out_errors_need() -> None:
    rng = np.random.default_rng(5)
    # Random folds: held out seconds from a training transmission, calibrated. Time blocks:
    # minutes to an hour later, errors twice the sigma (radii x 4).
    d2 = np.concatenate([_calibrated_radii(1000), 4.0 * _calibrated_radii(1000)])
    gap_s = np.concatenate([rng.uniform(2.0, 8.0, 1000), rng.uniform(300.0, 3600.0, 1000)])
    groups = np.repeat([0, 2], 1000)
    amount, scale_s = calibrate_time_widening(d2, gap_s, groups)
    factor = time_widening_factor(gap_s, amount, scale_s)
    assert amount >= 2.0  # the later ones need their variance x 4
    widened = d2 / factor
    assert coverage_misfit(widened, groups) < 0.5 * coverage_misfit(d2, groups)
    later = widened[groups == 2]
    assert abs(np.mean(later <= 1.0) - TARGET_1) < 0.1 and abs(np.mean(later <= 4.0) - TARGET_2) < 0.1
    # The queries amid the campaign keep nearly their calibrated ellipses.
    amid = widened[groups == 0]
    assert abs(np.mean(amid <= 1.0) - TARGET_1) < 0.06 and abs(np.mean(amid <= 4.0) - TARGET_2) < 0.06


def test_no_widening_where_time_says_nothing_or_is_unknown() -> None:
    rng = np.random.default_rng(6)
    d2 = np.concatenate([_calibrated_radii(800), _calibrated_radii(800)])
    gap_s = rng.uniform(1.0, 3600.0, 1600)  # calibrated at every gap: widening only hurts
    groups = np.repeat([0, 1], 800)
    assert calibrate_time_widening(d2, gap_s, groups) == (0.0, 0.0)
    overconfident = 4.0 * d2
    unknown = gap_s.copy()
    unknown[3] = np.nan  # a sample without a time: no gap to fit on
    assert calibrate_time_widening(overconfident, unknown, groups) == (0.0, 0.0)
