"""Cross-validation folds (disjoint, contiguous, complete) and the scoring of predictions."""

from __future__ import annotations

import numpy as np
import pytest

from heimdall.data.measured import default_cell_size_m
from heimdall.errors import InputError
from heimdall.evaluation import crossval
from heimdall.evaluation.calibration import reachable_coverage_2sigma
from heimdall.geo import ReferencePoint, local_to_ground

REFERENCE = ReferencePoint(40.76, -111.84)


def _positions(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    tx = rng.uniform(0.0, 1500.0, size=(n, 2))
    times = np.datetime64("2022-04-25T14:00:00") + rng.integers(0, 3600, size=n).astype("timedelta64[s]")
    times[:10] = times[10]  # a run of equal timestamps must not be split
    return tx, times


@pytest.mark.parametrize("mode", ["random", "grid", "time"])
def test_every_sample_is_tested_exactly_once_per_seed(mode: str) -> None:
    tx, times = _positions(400, 0)
    for seed in (0, 1):
        fold = crossval.make_folds(mode, 5, seed, tx, times)
        assert fold.shape == (400,) and set(np.unique(fold)) == set(range(5))
        # One fold index per sample: tested in exactly one fold, trained on in the other four.
        sizes = np.bincount(fold, minlength=5)
        assert sizes.sum() == 400 and sizes.min() > 0
        if mode == "random":
            assert sizes.max() - sizes.min() <= 1
        if mode == "time":
            assert sizes.max() - sizes.min() <= 10  # only the tied run of 11 timestamps may shift a block edge


def test_grid_folds_share_no_cell_and_differ_by_seed() -> None:
    tx, _ = _positions(600, 1)
    cell = [tuple(c) for c in np.floor((tx - tx.min(axis=0)) / default_cell_size_m(tx)).astype(int)]
    folds = {seed: crossval.make_folds("grid", 5, seed, tx) for seed in (0, 1)}
    for fold in folds.values():
        fold_of_cell: dict[tuple[int, ...], set[int]] = {}
        for c, f in zip(cell, fold, strict=True):
            fold_of_cell.setdefault(c, set()).add(int(f))
        assert all(len(f) == 1 for f in fold_of_cell.values())
        assert np.bincount(fold).max() < 2 * np.bincount(fold).min()  # dealt to balance samples
    assert not np.array_equal(folds[0], folds[1])


def test_time_folds_are_contiguous_blocks() -> None:
    tx, times = _positions(300, 2)
    fold = crossval.make_folds("time", 5, 0, tx, times)
    for f in range(4):
        assert times[fold == f].max() < times[fold == f + 1].min()
    np.testing.assert_array_equal(fold, crossval.make_folds("time", 5, 7, tx, times))
    with pytest.raises(InputError, match="timestamp"):
        crossval.make_folds("time", 5, 0, tx, np.full(300, np.datetime64("NaT"), dtype="datetime64[s]"))
    with pytest.raises(InputError, match="folds"):
        crossval.make_folds("random", 1, 0, tx)


def test_score_counts_errors_and_ellipse_coverage() -> None:
    truth_lat, truth_lon = local_to_ground(np.zeros(4), np.zeros(4), REFERENCE)
    # Predictions 100 m north of the truth: one ellipse reaches it at 1 sigma, one more at 2 sigma.
    lat, lon = local_to_ground(np.zeros(4), np.full(4, 100.0), REFERENCE)
    ellipse = {
        "sigma_major_m": np.array([150.0, 60.0, 300.0, 40.0]),
        "sigma_minor_m": np.array([10.0, 10.0, 40.0, 10.0]),
        "orientation_deg": np.array([0.0, 180.0, 90.0, 0.0]),  # north-south, north-south, east-west, north-south
    }
    result = crossval.score(np.asarray(truth_lat), np.asarray(truth_lon), np.asarray(lat), np.asarray(lon), ellipse)
    assert result["median_m"] == pytest.approx(100.0, abs=0.5)
    assert result["coverage_1sigma"] == pytest.approx(0.25)  # only the 150 m north-south ellipse
    assert result["coverage_2sigma"] == pytest.approx(0.5)  # and the 60 m one (100 m < 120 m)
    assert "coverage_95" not in result  # no 95% ellipse given
    # The 95% ellipse is k sigma per sample: at 3 sigma the 40 m one reaches 120 m, past the truth.
    with_95 = dict(ellipse, ellipse95_sigmas=np.array([1.0, 1.0, 1.0, 3.0]))
    result = crossval.score(np.asarray(truth_lat), np.asarray(truth_lon), np.asarray(lat), np.asarray(lon), with_95)
    assert result["coverage_95"] == pytest.approx(0.5)  # the 150 m one at 1 sigma and the 40 m one at 3
    lat = np.asarray(lat).copy()
    lat[0] = np.nan
    assert crossval.score(np.asarray(truth_lat), np.asarray(truth_lon), lat, np.asarray(lon))["unplaced"] == 1


def test_score_says_how_far_one_width_could_calibrate_the_ellipses() -> None:
    n = 40
    truth_lat, truth_lon = local_to_ground(np.zeros(n), np.zeros(n), REFERENCE)
    # Answers 10.37 to 400.37 m north of the truth under round 100 m ellipses: radius = distance /
    # 100 m (no radius exactly twice another, where rounding would decide the 2-sigma count).
    distance_m = np.linspace(10.37, 400.37, n)
    lat, lon = local_to_ground(np.zeros(n), distance_m, REFERENCE)
    ellipse = {"sigma_major_m": np.full(n, 100.0), "sigma_minor_m": np.full(n, 100.0), "orientation_deg": np.zeros(n)}
    result = crossval.score(np.asarray(truth_lat), np.asarray(truth_lon), np.asarray(lat), np.asarray(lon), ellipse)
    # Evenly spread radii: the quantiles interpolate linearly, 10.37 m + p x 390 m.
    low, high = (10.37 + p * 390.0 for p in (1 - np.exp(-0.5), 1 - np.exp(-2.0)))
    assert result["tail_ratio"] == pytest.approx(high / low, rel=1e-3)
    radius_sq = (distance_m / 100.0) ** 2
    assert result["reachable_coverage_2sigma"] == pytest.approx(reachable_coverage_2sigma(radius_sq), abs=1e-3)
    four = crossval.score(np.asarray(truth_lat)[:4], np.asarray(truth_lon)[:4], np.asarray(lat)[:4],
                          np.asarray(lon)[:4], {k: v[:4] for k, v in ellipse.items()})
    assert "tail_ratio" not in four and "reachable_coverage_2sigma" not in four  # too few to say
