"""Smoothing along tracks on a radio map's own scores (`models.track_grids`), against smoothing
the answers' Gaussians, and the fit's choice between the two (`training.track_calibration`)."""

from __future__ import annotations

import numpy as np

from heimdall.models.track_grids import ScoreGrid
from heimdall.models.tracks import MotionModel, TrackModel, smooth_tracks
from heimdall.training.track_calibration import SCORE_TEMPERATURE, HeldOutBatch, calibrate_tracks

STEP_S = 4.0
GRID = ScoreGrid(east0_m=0.0, north0_m=0.0, step_m=10.0, cols=60, rows=60)
SPREAD_M = 20.0


def _walk(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n transmissions STEP_S apart of a walker at 1.5 m/s through the middle of GRID."""
    heading = np.cumsum(rng.normal(0.0, 0.2, n))
    steps = 1.5 * STEP_S * np.stack([np.cos(heading), np.sin(heading)], axis=1)
    return np.arange(n) * STEP_S, np.array([200.0, 300.0]) + np.cumsum(steps, axis=0)


def _confused(truth_m: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores [n,G] of a map that cannot tell each truth from a decoy (somewhere else each time,
    scored a little higher); the answers one by one (the decoys) with their ellipses."""
    points = GRID.points_m
    decoys = rng.uniform(50.0, 550.0, size=truth_m.shape)

    def bump(centre: np.ndarray) -> np.ndarray:
        return np.exp(-0.5 * np.sum((points[None] - centre[:, None]) ** 2, axis=2) / SPREAD_M**2)

    log_score = np.log(bump(truth_m) + 1.2 * bump(decoys) + 1e-12).astype(np.float32)
    covariance = np.broadcast_to(SPREAD_M**2 * np.eye(2), (len(truth_m), 2, 2)).copy()
    return log_score, decoys, covariance


def test_a_transmission_the_map_confuses_with_another_place_is_found_by_its_neighbours_in_time() -> None:
    rng = np.random.default_rng(0)
    times, truth = _walk(60, rng)
    log_score, answers, covariance = _confused(truth, rng)
    gaussian = TrackModel(MotionModel(3.0, 60.0, 1.0e9))
    on_scores = TrackModel(MotionModel(3.0, 60.0, 1.0e9), score_temperature=1.0, score_grid=GRID)
    error_answers = np.median(np.linalg.norm(answers - truth, axis=1))
    error_gaussian = np.median(np.linalg.norm(smooth_tracks(answers, covariance, times, gaussian)[0] - truth, axis=1))
    position, spread, smoothed = smooth_tracks(answers, covariance, times, on_scores, log_score=log_score)
    error_scores = np.median(np.linalg.norm(position - truth, axis=1))
    assert smoothed.all()
    # One by one every answer is a decoy, hundreds of metres off; smoothing the decoys' ellipses
    # cannot find what they lost. The scores keep the truth's bump, the one that moves as a walker does.
    assert error_answers > 100.0 and error_gaussian > 100.0
    assert error_scores < 15.0
    # Its ellipse is the smoothed marginal's: within a bump's width, not a decoy's distance.
    assert np.median(np.sqrt(np.trace(spread, axis1=1, axis2=2) / 2.0)) < SPREAD_M
    # Without the scores (a caller that has none) the same model smooths the Gaussians.
    np.testing.assert_array_equal(smooth_tracks(answers, covariance, times, on_scores)[0],
                                  smooth_tracks(answers, covariance, times, gaussian)[0])


def test_the_fit_smooths_on_the_scores_where_they_beat_the_answers_gaussians() -> None:
    rng = np.random.default_rng(1)
    batches = []
    for scheme in ("random", "spatial", "time"):
        times, truth = _walk(50, rng)
        log_score, answers, covariance = _confused(truth, rng)
        batches.append(HeldOutBatch(scheme, answers, covariance * 400.0, times, truth, np.full(len(times), STEP_S),
                                    log_score, GRID))
    model = TrackModel(MotionModel(3.0, 60.0, 1.0e9))
    kept = calibrate_tracks(model, batches)
    assert kept.model is not None and kept.model.score_temperature == SCORE_TEMPERATURE
    for raw_m, smoothed_m in kept.medians_m.values():
        assert smoothed_m < 0.2 * raw_m
    # Without scores in every batch, only the Gaussians can be smoothed.
    without = [HeldOutBatch(b.scheme, b.position_m, b.covariance_m2, b.times_s, b.truth_m, b.gap_s) for b in batches]
    plain = calibrate_tracks(model, without[:2] + batches[2:])
    assert plain.model is None or plain.model.score_temperature == 0.0


def test_a_score_smoother_round_trips_through_a_bundle_config() -> None:
    model = TrackModel(MotionModel(8.0, 30.0, 600.0), correlation_s=16.0, disagreement_window_s=60.0,
                       score_temperature=1.0, score_grid=GRID)
    assert TrackModel.from_dict(model.to_dict()) == model
    # Bundles stored before smooth the answers' Gaussians.
    older = {k: v for k, v in model.to_dict().items() if k not in ("score_temperature", "score_grid")}
    restored = TrackModel.from_dict(older)
    assert restored.score_temperature == 0.0 and restored.score_grid is None


def test_a_score_grid_is_read_back_from_a_maps_points() -> None:
    grid = ScoreGrid.from_points(GRID.points_m)
    assert grid == GRID
    # Row-major, east fastest, as `RadioMapNet.grid_m` lays its points out.
    np.testing.assert_array_equal(GRID.points_m[1], [10.0, 0.0])
    np.testing.assert_array_equal(GRID.points_m[GRID.cols], [0.0, 10.0])


def test_a_transmission_the_calibration_found_k_times_less_sure_of_counts_as_k_times_wider() -> None:
    rng = np.random.default_rng(2)
    truth = np.tile([[300.0, 300.0]], (20, 1))
    times = np.arange(20) * STEP_S
    heard = truth + rng.normal(0.0, 5.0, truth.shape)
    points = GRID.points_m
    # Each transmission's map likelihood: a Gaussian bump of 30 m about where it was heard from.
    log_score = (-0.5 * np.sum((points[None] - heard[:, None]) ** 2, axis=2) / 30.0**2).astype(np.float32)
    covariance = np.broadcast_to(900.0 * np.eye(2), (20, 2, 2)).copy()
    model = TrackModel(MotionModel(0.5, 60.0, 1.0e9), outlier_share=0.0, score_temperature=1.0, score_grid=GRID)
    _, sure, _ = smooth_tracks(heard, covariance, times, model, log_score=log_score)
    _, unsure, _ = smooth_tracks(heard, covariance, times, model, log_score=log_score, score_widening=np.full(20, 4.0))
    # A Gaussian log-likelihood divided by k is a Gaussian of k times the variance: so is their combination.
    ratio = np.trace(unsure, axis1=1, axis2=2) / np.trace(sure, axis1=1, axis2=2)
    assert 3.0 < np.median(ratio) < 4.5


def test_a_wide_motion_blur_spreads_a_point_as_a_gaussian_and_matches_the_direct_convolution() -> None:
    from scipy.ndimage import gaussian_filter

    from heimdall.models.track_grids import MATRIX_BLUR_SIGMA_CELLS, gaussian_blur

    point = np.zeros((121, 101))
    point[60, 50] = 1.0
    sigma_cells = 6.0
    assert sigma_cells > MATRIX_BLUR_SIGMA_CELLS  # the matrix path
    blurred = gaussian_blur(point, sigma_cells)
    rows, cols = np.indices(point.shape)
    # Mass kept (the kernel fits inside the lattice), centred, and a variance per axis of
    # sigma^2 less what the cut at 3 sigma removes (2.7% for a continuous Gaussian).
    assert abs(blurred.sum() - 1.0) < 1e-12
    assert abs((blurred * (rows - 60)).sum()) < 1e-9 and abs((blurred * (cols - 50)).sum()) < 1e-9
    variances = np.array([(blurred * (rows - 60) ** 2).sum(), (blurred * (cols - 50) ** 2).sum()])
    assert np.all((variances > 0.97 * sigma_cells**2) & (variances < sigma_cells**2))
    # Against the direct convolution near the edges, where the zeros beyond them matter, at
    # widths on both sides of the switch and one wider than the lattice.
    state = np.random.default_rng(3).random((37, 53))
    for sigma in (0.7, 3.0, 4.5, 12.0, 80.0):
        direct = gaussian_filter(state, sigma, mode="constant", truncate=3.0)
        assert np.allclose(gaussian_blur(state, sigma), direct, rtol=1e-12, atol=1e-15)
