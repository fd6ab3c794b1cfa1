"""Cross-validation folds for measured data, and the scores of predictions against truth.

Used by `benchmarks/real_data.py` (docs/REAL_DATA.md, "How to measure"): `make_folds` deals
samples to K folds (random, spatially disjoint grid cells, or contiguous time blocks);
`score` turns predicted latitude/longitude (and the ellipse fields of `localize --json`)
into median/p90 great-circle error and ellipse coverage.
"""

from __future__ import annotations

import numpy as np

from heimdall.data.measured import default_cell_size_m
from heimdall.errors import InputError
from heimdall.evaluation.calibration import reachable_coverage_2sigma, tail_ratio
from heimdall.geo import ReferencePoint, ground_to_local, haversine_m

__all__ = ["MODES", "make_folds", "ellipse_mahalanobis_sq", "score"]

MODES = ("random", "grid", "time")


def make_folds(
    mode: str, n_folds: int, seed: int, tx_position_m: np.ndarray, timestamps: np.ndarray | None = None
) -> np.ndarray:
    """Fold index per sample, [N] int in [0, n_folds).

    - "random": a seeded permutation dealt round-robin;
    - "grid": square cells of a tenth of the transmitters' extent (`default_cell_size_m`);
      cells in seeded random order are dealt one by one to the fold with the fewest samples
      so far, so no cell is split between folds;
    - "time": contiguous blocks of equal size in timestamp order (samples sharing a
      timestamp share a fold); the seed does not change them.
    """
    tx = np.asarray(tx_position_m, dtype=np.float64)
    n = len(tx)
    if n_folds < 2 or n_folds > n:
        raise InputError(f"folds must be in [2, {n}] (samples), got {n_folds}")
    rng = np.random.default_rng(seed)
    fold = np.empty(n, dtype=np.int64)
    if mode == "random":
        fold[rng.permutation(n)] = np.arange(n) % n_folds
        return fold
    if mode == "grid":
        size_m = default_cell_size_m(tx)
        cell_xy = np.floor((tx - tx.min(axis=0)) / size_m).astype(np.int64)
        _, cell = np.unique(cell_xy, axis=0, return_inverse=True)
        cell = cell.reshape(-1)
        counts = np.bincount(cell)
        if len(counts) < n_folds:
            raise InputError(f"grid folds: {len(counts)} cells cannot fill {n_folds} folds")
        load = np.zeros(n_folds, dtype=np.int64)
        fold_of_cell = np.empty(len(counts), dtype=np.int64)
        for c in rng.permutation(len(counts)):
            fold_of_cell[c] = int(np.argmin(load))
            load[fold_of_cell[c]] += counts[c]
        return fold_of_cell[cell]
    if mode != "time":
        raise InputError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    if timestamps is None or np.isnat(np.asarray(timestamps).astype("datetime64[s]")).any():
        raise InputError("time folds need a timestamp for every sample")
    times = np.asarray(timestamps).astype("datetime64[s]")
    order = np.argsort(times, kind="stable")
    rank_fold = (np.arange(n) * n_folds) // n
    sorted_times = times[order]
    # Ties across a block boundary take the earlier block, so blocks stay contiguous in time.
    fold[order] = rank_fold[np.searchsorted(sorted_times, sorted_times, side="left")]
    return fold


def ellipse_mahalanobis_sq(
    east_m: np.ndarray, north_m: np.ndarray, sigma_major_m: np.ndarray, sigma_minor_m: np.ndarray,
    orientation_deg: np.ndarray,
) -> np.ndarray:
    """Squared Mahalanobis distance of offsets (metres) under `localize`'s ellipse fields.

    `orientation_deg` is the major axis, clockwise from north.
    """
    theta = np.radians(orientation_deg)
    along = east_m * np.sin(theta) + north_m * np.cos(theta)
    across = east_m * np.cos(theta) - north_m * np.sin(theta)
    minor = np.maximum(sigma_minor_m, 1e-6)
    return (along / np.maximum(sigma_major_m, 1e-6)) ** 2 + (across / minor) ** 2


def score(
    truth_lat_deg: np.ndarray, truth_lon_deg: np.ndarray, lat_deg: np.ndarray, lon_deg: np.ndarray,
    ellipse: dict[str, np.ndarray] | None = None,
) -> dict[str, float]:
    """Median and p90 great-circle error (m), n, unplaced count; coverage when `ellipse` given.

    A prediction that is NaN counts as infinitely wrong (it is not dropped). `ellipse` holds
    `sigma_major_m`, `sigma_minor_m`, `orientation_deg` per sample, as `localize --json`;
    with `ellipse95_sigmas` (k per sample) too, `coverage_95` is the share inside the
    k-sigma ellipse (the model's 95% ellipse). From 10 samples on, `tail_ratio` and
    `reachable_coverage_2sigma` say how far any one width could calibrate these ellipses
    (`evaluation.calibration`).
    """
    error_m = np.asarray(haversine_m(truth_lat_deg, truth_lon_deg, lat_deg, lon_deg), dtype=np.float64)
    error_m = np.where(np.isfinite(error_m), error_m, np.inf)
    result = {
        "n": int(len(error_m)),
        "unplaced": int(np.isinf(error_m).sum()),
        "median_m": float(np.median(error_m)),
        "p90_m": float(np.quantile(error_m, 0.9, method="higher")),
    }
    if ellipse is not None:
        radius_sq = np.empty(len(error_m))
        for i in range(len(error_m)):
            at_prediction = ReferencePoint(float(lat_deg[i]), float(lon_deg[i]))
            east, north = ground_to_local(truth_lat_deg[i], truth_lon_deg[i], at_prediction)
            radius_sq[i] = ellipse_mahalanobis_sq(
                np.asarray(east), np.asarray(north), ellipse["sigma_major_m"][i], ellipse["sigma_minor_m"][i],
                ellipse["orientation_deg"][i],
            )
        result["coverage_1sigma"] = float(np.mean(radius_sq <= 1.0))
        result["coverage_2sigma"] = float(np.mean(radius_sq <= 4.0))
        if np.isfinite(radius_sq).sum() >= 10:
            result["tail_ratio"] = tail_ratio(radius_sq)
            result["reachable_coverage_2sigma"] = reachable_coverage_2sigma(radius_sq)
        if ellipse.get("ellipse95_sigmas") is not None:
            result["coverage_95"] = float(np.mean(radius_sq <= np.asarray(ellipse["ellipse95_sigmas"]) ** 2))
    return result
