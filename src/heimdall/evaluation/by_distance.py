"""Errors and ellipse coverage by how close the training data came to each truth.

On measured data the error of a fingerprinting localiser follows the distance from the
transmitter to the nearest training transmission far more than anything the query shows
(docs/REAL_DATA.md): this breakdown tells a user where the campaign needs more
measurements, and where the ellipses are conservative (near measured places) or
optimistic (away from them). Distances in metres.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["bin_by_distance", "by_distance_to_training", "DISTANCE_GROUPS"]

#: Quantile groups of `by_distance_to_training` (terciles), and the fewest samples per group.
DISTANCE_GROUPS = 3
_MIN_PER_GROUP = 10


def bin_by_distance(
    distance_m: np.ndarray, error_m: np.ndarray, mahalanobis_sq: np.ndarray, edges_m: tuple[float, ...],
    sigma_m: np.ndarray | None = None, ellipse95_sigmas: float | None = None,
) -> list[dict[str, Any]]:
    """Per bin [0, e1), [e1, e2), ..., [e_last, inf) of `distance_m` (`from_m`, `to_m`; None for
    the open last one): rows, median error (m), median sigma (m, when `sigma_m` is given), 1-
    and 2-sigma coverage, and with `ellipse95_sigmas` (k) the coverage of the 95% ellipse
    (`coverage_95`); empty bins left out.

    A sample not placed (non-finite error) counts as outside every ellipse and as an infinite error.
    """
    error_m = np.where(np.isfinite(error_m), error_m, np.inf)
    mahalanobis_sq = np.where(np.isfinite(mahalanobis_sq), mahalanobis_sq, np.inf)
    bounds = (0.0, *edges_m, np.inf)
    rows = []
    for low, high in zip(bounds[:-1], bounds[1:], strict=True):
        inside = (distance_m >= low) & (distance_m < high)
        if not inside.any():
            continue
        # The last bin is open: its upper bound is None (JSON has no infinity).
        row: dict[str, Any] = {"from_m": float(low), "to_m": float(high) if np.isfinite(high) else None,
                               "n": int(inside.sum()),
                               "median_error_m": float(np.median(error_m[inside]))}
        if sigma_m is not None:
            row["median_sigma_m"] = float(np.median(sigma_m[inside]))
        row["coverage_1sigma"] = float(np.mean(mahalanobis_sq[inside] <= 1.0))
        row["coverage_2sigma"] = float(np.mean(mahalanobis_sq[inside] <= 4.0))
        if ellipse95_sigmas is not None:
            row["coverage_95"] = float(np.mean(mahalanobis_sq[inside] <= ellipse95_sigmas**2))
        rows.append(row)
    return rows


def by_distance_to_training(
    truth_m: np.ndarray, training_m: np.ndarray, error_m: np.ndarray, mahalanobis_sq: np.ndarray,
    groups: int = DISTANCE_GROUPS, ellipse95_sigmas: float | None = None,
) -> list[dict[str, Any]]:
    """`bin_by_distance` over quantile groups (terciles by default) of the distance from each
    truth [N,2] to the nearest training transmitter [T,2] (same frame, metres).

    Empty when there are no training positions or fewer than 10 samples per group.
    """
    training_m = training_m[np.all(np.isfinite(training_m), axis=1)]
    if len(training_m) == 0 or len(truth_m) < groups * _MIN_PER_GROUP:
        return []
    distance_m, _ = cKDTree(training_m).query(truth_m)
    edges = tuple(float(e) for e in np.quantile(distance_m, np.arange(1, groups) / groups))
    # Ties (many truths on training places) can repeat an edge; the bins stay disjoint.
    return bin_by_distance(distance_m, error_m, mahalanobis_sq, tuple(dict.fromkeys(edges)),
                           ellipse95_sigmas=ellipse95_sigmas)
