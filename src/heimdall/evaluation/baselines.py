"""Classical RSS localisation baselines: weighted centroid and grid-search maximum likelihood.

Inputs follow the padded per-sample layout: `rx_position_m` [N, R, 2 or 3] (east/north(/up)
metres; only east/north are used), `rss_dbm` [N, R] (NaN where not heard), `heard` [N, R]
bool. Outputs are [N, 2] east/north metres; a sample no receiver heard gets NaN.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import log_ndtr

from heimdall.errors import InputError

__all__ = ["weighted_centroid", "GridSpec", "mle_grid"]

# Working-memory bound of one vectorised block (bytes of float64 temporaries, ~200 MB).
_BLOCK_BYTES = 200_000_000
# Distances are clamped here so a grid point on top of a receiver has a finite path loss.
_MIN_DISTANCE_M = 1.0


def _observations(
    rx_position_m: np.ndarray, rss_dbm: np.ndarray, heard: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate the padded layout; return rx [N,R,2] (NaN -> 0), rss (0 if unheard), heard."""
    rx = np.asarray(rx_position_m, dtype=np.float64)
    rss = np.asarray(rss_dbm, dtype=np.float64)
    mask = np.asarray(heard, dtype=bool)
    if rx.ndim != 3 or rx.shape[2] < 2:
        raise InputError(f"rx_position_m must be [N, R, 2 or 3], got {rx.shape}")
    if rss.shape != rx.shape[:2] or mask.shape != rx.shape[:2]:
        raise InputError(
            f"rss_dbm {rss.shape} and heard {mask.shape} must be [N, R] = {rx.shape[:2]}"
        )
    rx2 = rx[:, :, :2]
    if np.any(mask & ~np.isfinite(rss)) or np.any(mask[:, :, None] & ~np.isfinite(rx2)):
        raise InputError("a heard receiver has a non-finite rss_dbm or position")
    return np.where(np.isfinite(rx2), rx2, 0.0), np.where(mask, rss, 0.0), mask


def weighted_centroid(
    rx_position_m: np.ndarray, rss_dbm: np.ndarray, heard: np.ndarray
) -> np.ndarray:
    """Centroid of the heard receivers weighted by linear received power, [N, 2] metres.

    Weights are 10^(rss/10) normalised per sample (computed relative to the strongest heard
    receiver, so nothing overflows). Received power falls as d^-n, so the estimate is
    pulled hard toward the strongest station and never leaves the receivers' convex hull:
    a biased, model-free floor that any real method should beat.
    """
    rx, rss, mask = _observations(rx_position_m, rss_dbm, heard)
    max_dbm = np.max(np.where(mask, rss, -np.inf), axis=1, keepdims=True)
    any_heard = np.isfinite(max_dbm)
    relative_db = np.where(mask, rss - np.where(any_heard, max_dbm, 0.0), -np.inf)
    weight = np.power(10.0, relative_db / 10.0)  # 0 where not heard
    total = weight.sum(axis=1, keepdims=True)
    centroid_m = np.einsum("nr,nrc->nc", weight / np.where(any_heard, total, 1.0), rx)
    return np.where(any_heard, centroid_m, np.nan)


@dataclass(frozen=True)
class GridSpec:
    """Regular east/north search grid (metres), bounds inclusive, spacing `step_m`."""

    east_min_m: float
    east_max_m: float
    north_min_m: float
    north_max_m: float
    step_m: float

    def __post_init__(self) -> None:
        values = (self.east_min_m, self.east_max_m, self.north_min_m, self.north_max_m)
        if not (np.all(np.isfinite(values)) and np.isfinite(self.step_m) and self.step_m > 0):
            raise InputError("grid bounds must be finite and step_m positive")
        if self.east_max_m < self.east_min_m or self.north_max_m < self.north_min_m:
            raise InputError("grid maxima must not be below the minima")

    def points(self) -> np.ndarray:
        """All grid points, [G, 2] east/north metres (east varies fastest)."""
        east_m = np.arange(self.east_min_m, self.east_max_m + 0.5 * self.step_m, self.step_m)
        north_m = np.arange(self.north_min_m, self.north_max_m + 0.5 * self.step_m, self.step_m)
        grid_east, grid_north = np.meshgrid(east_m, north_m)
        return np.stack([grid_east.ravel(), grid_north.ravel()], axis=1)


def _log_distance_db(offset_m: np.ndarray, exponent: float, reference_m: float) -> np.ndarray:
    """Path-loss term 10 n log10(d / d0) in dB from east/north offsets [..., 2] (d >= 1 m)."""
    east_m, north_m = offset_m[..., 0], offset_m[..., 1]
    distance_sq_m2 = np.maximum(east_m * east_m + north_m * north_m, _MIN_DISTANCE_M**2)
    # 10 n log10(d / d0) = 5 n log10(d^2) - 10 n log10(d0): no square root needed.
    return 5.0 * exponent * np.log10(distance_sq_m2) - 10.0 * exponent * np.log10(reference_m)


def _censor_cost(
    p_hat_dbm: np.ndarray,
    loss_db: np.ndarray,
    threshold_dbm: np.ndarray,
    censored: np.ndarray,
    sigma_db: float,
) -> np.ndarray:
    """Sum over censored receivers of -log Phi((threshold - predicted) / sigma), [n, G].

    `p_hat_dbm` [n, G] or [1, G]; `loss_db` [G, R] (shared layout) or [n, G, R];
    `threshold_dbm`, `censored` [n, R]. Looping over the few receiver slots keeps
    temporaries at [n, G].
    """
    cost = np.zeros((censored.shape[0], p_hat_dbm.shape[1]))
    for slot in np.flatnonzero(censored.any(axis=0)):
        rows = np.flatnonzero(censored[:, slot])
        slot_loss_db = loss_db[:, slot][None, :] if loss_db.ndim == 2 else loss_db[rows, :, slot]
        p_rows_dbm = p_hat_dbm if p_hat_dbm.shape[0] == 1 else p_hat_dbm[rows]
        z = (threshold_dbm[rows, slot][:, None] - p_rows_dbm + slot_loss_db) / sigma_db
        cost[rows] -= log_ndtr(z)
    return cost


def _pattern_blocks(
    loss_db: np.ndarray, rss: np.ndarray, columns: np.ndarray, group: np.ndarray, per_block: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Heard cost (minus a per-sample constant) of samples sharing one heard pattern.

    With centring C over the k heard receivers, ||C(rss + L_g)||^2 = ||C rss||^2 +
    2 (C rss) . (C L_g) + ||C L_g||^2: one matrix product plus a per-point vector. Yields
    (sample indices, cost [n, G] in dB^2, fitted power [n or 1, G] in dBm).
    """
    heard_loss_db = loss_db[:, columns]
    mean_loss_db = heard_loss_db.mean(axis=1)
    centred_loss_db = heard_loss_db - mean_loss_db[:, None]
    loss_norm_db2 = np.sum(centred_loss_db**2, axis=1)
    heard_rss_dbm = rss[np.ix_(group, columns)]
    mean_rss_dbm = heard_rss_dbm.mean(axis=1, keepdims=True)
    centred_rss_db = heard_rss_dbm - mean_rss_dbm
    for start in range(0, len(group), per_block):
        rows = slice(start, start + per_block)
        cost = centred_rss_db[rows] @ (2.0 * centred_loss_db.T)
        cost += loss_norm_db2
        yield group[rows], cost, mean_rss_dbm[rows] + mean_loss_db[None, :]


def _mixed_blocks(
    loss_db: np.ndarray, rss: np.ndarray, mask: np.ndarray, group: np.ndarray, per_block: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Heard cost (minus a per-sample constant) of samples with any heard patterns.

    With weights w (1 = heard), k = sum w, S1 = sum w r and r = rss + L_g, the cost
    sum w r^2 - S1^2 / k comes from two matrix products against [L, L^2]; cheaper than
    per-pattern centring when patterns have few samples each. Yields as `_pattern_blocks`.
    """
    stacked_db = np.concatenate([loss_db, loss_db**2], axis=1).T  # [2R, G]
    for start in range(0, len(group), per_block):
        rows = group[start : start + per_block]
        weight = mask[rows].astype(np.float64)
        count = np.maximum(weight.sum(axis=1, keepdims=True), 1.0)
        weighted_rss = weight * rss[rows]
        cost = np.concatenate([2.0 * weighted_rss, weight], axis=1) @ stacked_db
        p_hat_dbm = weight @ loss_db.T
        p_hat_dbm += weighted_rss.sum(axis=1, keepdims=True)
        p_hat_dbm /= count
        cost -= count * p_hat_dbm**2
        yield rows, cost, p_hat_dbm


@dataclass(frozen=True, eq=False)
class _Search:
    """What every pass of `mle_grid` searches with: observations, censoring, path-loss model."""

    rx: np.ndarray  # [N, R, 2] receiver east/north, metres
    rss: np.ndarray  # [N, R] dBm, 0 where not heard
    mask: np.ndarray  # [N, R] heard
    threshold_dbm: np.ndarray | None  # [N, R] hearing threshold of censored receivers
    censored: np.ndarray | None  # [N, R] present, located, not heard
    exponent: float
    reference_m: float
    sigma_db: float

    def censor_cost(self, rows: Any, p_hat_dbm: np.ndarray, loss_db: np.ndarray) -> np.ndarray | None:
        """`_censor_cost` of `rows`, or None where none of them has a censored receiver."""
        if self.censored is None or self.threshold_dbm is None or not self.censored[rows].any():
            return None
        return _censor_cost(p_hat_dbm, loss_db, self.threshold_dbm[rows], self.censored[rows], self.sigma_db)


def _coarse_search(points_m: np.ndarray, search: _Search) -> np.ndarray:
    """Best grid point per sample, [N, 2]; samples nobody heard are left at the first point.

    Samples are grouped by receiver layout (sharing a [G, R] path-loss table), then by
    heard pattern where a pattern has more samples than heard receivers (its set-up cost
    is then repaid); the remaining samples are searched together with per-sample weights.
    """
    rx, rss, mask = search.rx, search.rss, search.mask
    n_samples = mask.shape[0]
    best_m = np.repeat(points_m[:1], n_samples, axis=0)
    per_block = max(1, _BLOCK_BYTES // (8 * 4 * len(points_m)))
    _, layout_of = np.unique(rx.reshape(n_samples, -1), axis=0, return_inverse=True)
    layout_of = layout_of.reshape(-1)
    for layout in np.unique(layout_of):
        members = np.flatnonzero((layout_of == layout) & mask.any(axis=1))
        if members.size == 0:
            continue
        loss_db = _log_distance_db(
            points_m[:, None, :] - rx[members[0]][None, :, :], search.exponent, search.reference_m
        )
        patterns, pattern_of = np.unique(mask[members], axis=0, return_inverse=True)
        pattern_of = pattern_of.reshape(-1)
        blocks: list[Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]] = []
        mixed = []
        for index, pattern in enumerate(patterns):
            columns = np.flatnonzero(pattern)
            group = members[pattern_of == index]
            if len(group) > columns.size:
                blocks.append(_pattern_blocks(loss_db, rss, columns, group, per_block))
            else:
                mixed.append(group)
        if mixed:
            blocks.append(_mixed_blocks(loss_db, rss, mask, np.concatenate(mixed), per_block))
        for rows, cost, p_hat_dbm in itertools.chain.from_iterable(blocks):
            censor_db = search.censor_cost(rows, p_hat_dbm, loss_db)
            if censor_db is not None:
                cost /= 2.0 * search.sigma_db**2
                cost += censor_db
            best_m[rows] = points_m[np.argmin(cost, axis=1)]
    return best_m


def _refine_search(
    best_m: np.ndarray, fine_step_m: float, grid: GridSpec, search: _Search, polish: bool = False
) -> np.ndarray:
    """Best point per sample of a square grid of `fine_step_m` spanning +-8 steps around
    `best_m` (clipped to the grid's bounds), [N, 2] metres; with `polish`, moved to the
    minimum of the local quadratic fit."""
    offsets_m = np.arange(-8, 9) * fine_step_m
    offset_east, offset_north = np.meshgrid(offsets_m, offsets_m)
    offsets = np.stack([offset_east.ravel(), offset_north.ravel()], axis=1)
    low = np.array([grid.east_min_m, grid.north_min_m])
    high = np.array([grid.east_max_m, grid.north_max_m])
    rx, rss, mask = search.rx, search.rss, search.mask
    n_samples, n_receivers = mask.shape
    weight = mask.astype(np.float64)
    count = np.maximum(weight.sum(axis=1), 1.0)
    refined_m = best_m.copy()
    per_block = max(1, _BLOCK_BYTES // (8 * 4 * len(offsets) * n_receivers))
    for start in range(0, n_samples, per_block):
        rows = slice(start, start + per_block)
        fine_m = np.clip(best_m[rows][:, None, :] + offsets[None, :, :], low, high)
        loss_db = _log_distance_db(
            fine_m[:, :, None, :] - rx[rows][:, None, :, :], search.exponent, search.reference_m
        )
        residual_db = loss_db + rss[rows][:, None, :]
        p_hat_dbm = np.einsum("nr,ngr->ng", weight[rows], residual_db) / count[rows][:, None]
        residual_db -= p_hat_dbm[:, :, None]
        cost = np.einsum("nr,ngr->ng", weight[rows], residual_db**2) / (2.0 * search.sigma_db**2)
        censor_db = search.censor_cost(rows, p_hat_dbm, loss_db)
        if censor_db is not None:
            cost += censor_db
        pick = np.argmin(cost, axis=1)
        refined_m[rows] = fine_m[np.arange(len(pick)), pick]
        if polish:
            # Neighbours clipped at the grid's edge would corrupt the finite differences.
            chosen_m = refined_m[rows]
            inside = np.all((chosen_m - low >= fine_step_m) & (high - chosen_m >= fine_step_m), 1)
            refined_m[rows] += _quadratic_step_m(cost, pick, fine_step_m) * inside[:, None]
    return np.clip(refined_m, low, high)


def _quadratic_step_m(cost: np.ndarray, pick: np.ndarray, step_m: float) -> np.ndarray:
    """Sub-grid Newton step [n, 2] (metres) from the 3x3 costs around each minimum.

    Finite differences give the gradient g and Hessian H of the cost at the picked point of
    a 17 x 17 window (rows north, columns east); the step -H^-1 g is taken only where the
    point is interior and H is positive definite, and is limited to two grid steps.
    """
    window = cost.reshape(-1, 17, 17)
    row, col = np.divmod(pick, 17)
    interior = (row > 0) & (row < 16) & (col > 0) & (col < 16)
    row, col = np.clip(row, 1, 15), np.clip(col, 1, 15)
    index = np.arange(len(pick))

    def at(d_row: int, d_col: int) -> np.ndarray:
        return window[index, row + d_row, col + d_col]

    grad_east = (at(0, 1) - at(0, -1)) / 2.0
    grad_north = (at(1, 0) - at(-1, 0)) / 2.0
    hess_ee = at(0, 1) - 2.0 * at(0, 0) + at(0, -1)
    hess_nn = at(1, 0) - 2.0 * at(0, 0) + at(-1, 0)
    hess_en = (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1)) / 4.0
    det = hess_ee * hess_nn - hess_en**2
    usable = interior & (hess_ee > 0) & (det > 0)
    safe_det = np.where(usable, det, 1.0)
    step_east = -(hess_nn * grad_east - hess_en * grad_north) / safe_det
    step_north = -(hess_ee * grad_north - hess_en * grad_east) / safe_det
    step = np.stack([step_east, step_north], axis=1)
    # In an elongated valley the lattice minimum can sit a step or more from the true one;
    # steps are kept within two grid steps, where the quadratic fit is still trustworthy.
    length = np.linalg.norm(step, axis=1, keepdims=True)
    step = step * np.minimum(1.0, 2.0 / np.maximum(length, 1e-12))
    return np.where(usable[:, None], step * step_m, 0.0)


def mle_grid(
    rx_position_m: np.ndarray,
    rss_dbm: np.ndarray,
    heard: np.ndarray,
    grid: GridSpec,
    path_loss_exponent: float,
    shadowing_sigma_db: float,
    reference_distance_m: float = 100.0,
    refine: bool = True,
    noise_floor_dbm: np.ndarray | None = None,
    min_snr_db: float = 0.0,
    present: np.ndarray | None = None,
) -> np.ndarray:
    """Grid-search maximum-likelihood transmitter position, [N, 2] east/north metres.

    Model: rss_j = P - 10 n log10(d_j / d0) + X_j, X_j ~ N(0, sigma^2) i.i.d., with the
    transmit power P unknown (it also absorbs any constant offset such as antenna gains and
    d0, so `reference_distance_m` does not change the estimate). At each grid point P is
    profiled out by its ML estimate, the mean residual over heard receivers, leaving the sum
    of squared residuals about that mean; the estimate is the grid point minimising it.
    With `refine`, two finer local grids (step/4 over +-2 coarse steps, then step/16 over
    +-2 of those; clipped to the grid bounds) sharpen the estimate to step/16, and a
    quadratic fit to the 3 x 3 costs around that minimum moves it by up to two fine steps.

    Censoring (optional): given `noise_floor_dbm` [N, R], a receiver that is present (all
    not-heard receivers when `present` is None) but did not hear adds
    -log Phi((noise_floor + min_snr_db - predicted) / sigma), "too weak to hear here".
    P is then kept at the heard-only estimate instead of a joint fit, an approximation that
    leaves the heard term exact.

    Ill-posed samples are still answered: with fewer than 3 heard receivers (and no
    censoring) the minimum is a curve (2 heard: one point of it) or the whole plane (1
    heard: the receiver's own position, the minimiser nearest to where it was heard; any
    grid point would be an artefact of the grid); a sample no receiver heard gets NaN.
    Cost is O(N G R): samples sharing a receiver layout share one path-loss table and are
    searched with matrix products (about 1 s for 2,000 samples, 7 receivers and a 251 x 251
    grid on two CPU cores); receivers that move between samples need a
    table per sample (tens of seconds at that size: use a coarser grid). Censoring adds one
    log Phi evaluation (~70 ns) per censored receiver and grid point.
    """
    rx, rss, mask = _observations(rx_position_m, rss_dbm, heard)
    if not (path_loss_exponent > 0 and shadowing_sigma_db > 0 and reference_distance_m > 0):
        raise InputError(
            "path_loss_exponent, shadowing_sigma_db and reference_distance_m must be positive"
        )
    threshold_dbm, censored = None, None
    if noise_floor_dbm is not None:
        floor = np.asarray(noise_floor_dbm, dtype=np.float64)
        if floor.shape != mask.shape:
            raise InputError(f"noise_floor_dbm must be [N, R] = {mask.shape}, got {floor.shape}")
        listening = np.ones_like(mask) if present is None else np.asarray(present, dtype=bool)
        if listening.shape != mask.shape:
            raise InputError(f"present must be [N, R] = {mask.shape}, got {listening.shape}")
        located = np.all(np.isfinite(np.asarray(rx_position_m, dtype=np.float64)[..., :2]), 2)
        censored = listening & located & ~mask & np.isfinite(floor)
        censored &= mask.any(axis=1, keepdims=True)
        threshold_dbm = np.where(censored, floor + min_snr_db, 0.0)

    search = _Search(
        rx, rss, mask, threshold_dbm, censored, path_loss_exponent, reference_distance_m, shadowing_sigma_db
    )
    best_m = _coarse_search(grid.points(), search)
    if refine:
        # Two passes: step/4 over +-2 coarse steps, then step/16 over +-2 of those steps.
        for fine_step_m, polish in ((grid.step_m / 4.0, False), (grid.step_m / 16.0, True)):
            best_m = _refine_search(best_m, fine_step_m, grid, search, polish)
    lone = mask.sum(axis=1) == 1
    if censored is not None:
        lone &= ~censored.any(axis=1)
    best_m[lone] = rx[lone][mask[lone]]
    return np.where(mask.any(axis=1)[:, None], best_m, np.nan)
