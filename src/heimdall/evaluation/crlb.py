"""Cramer-Rao lower bound for RSS localisation (Patwari et al., IEEE TSP 2003).

Model: rss_j = P - 10 n log10(d_j) + X_j, X_j ~ N(0, sigma^2) i.i.d. (log-normal shadowing).
With kk = 10 n / ln 10 and (dx, dy) = transmitter minus receiver j (metres), receiver j
contributes g_j = [kk dx / d^2, kk dy / d^2] (plus a constant 1 when P is unknown) and the
Fisher information is F = sum_j g_j g_j^T / sigma^2. The bound on the position RMSE (metres)
of any unbiased estimator is sqrt(trace of the position block of F^-1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heimdall.errors import DataError, InputError

__all__ = ["CrlbSummary", "rss_crlb_rmse_m", "crlb_rms_m"]

# F is treated as singular when its unit-diagonal form has an eigenvalue below this.
_SINGULAR_EIGENVALUE = 1e-10


@dataclass(frozen=True)
class CrlbSummary:
    """Root-mean-square of per-sample bounds over the samples where the bound is finite.

    `rms_m` (metres) = sqrt(mean(b^2)) over the `n_finite` finite bounds; the `n_infinite`
    samples whose position is not identifiable (singular F: too few receivers, colinear
    geometry) or undefined (transmitter on a receiver) are excluded and counted here.
    """

    rms_m: float
    n_finite: int
    n_infinite: int


def rss_crlb_rmse_m(
    rx_position_m: np.ndarray,
    tx_position_m: np.ndarray,
    path_loss_exponent: float,
    shadowing_sigma_db: float,
    tx_power_known: bool = False,
    mask: np.ndarray | None = None,
) -> float | np.ndarray:
    """Position CRLB (metres) of RSS localisation, per sample.

    `rx_position_m` is [R, 2(+)] (one layout for every sample) or [N, R, 2(+)], east/north
    first; `tx_position_m` is [2] or [N, 2]; `mask` [N, R] (or [R]) marks the receivers that
    heard (default: all). Returns a float when neither input is batched and no 2-D mask is
    given, else [N]. A sample whose F is singular (fewer than 3 heard receivers with the
    power unknown, fewer than 2 with it known, or degenerate geometry) gets inf; a
    transmitter exactly on a heard receiver gets nan (the model's gradient is undefined).
    """
    if not (path_loss_exponent > 0 and shadowing_sigma_db > 0):
        raise InputError("path_loss_exponent and shadowing_sigma_db must be positive")
    rx = np.asarray(rx_position_m, dtype=np.float64)
    tx = np.asarray(tx_position_m, dtype=np.float64)
    if rx.ndim not in (2, 3) or rx.shape[-1] < 2:
        raise InputError(f"rx_position_m must be [R, 2] or [N, R, 2], got {rx.shape}")
    if tx.ndim not in (1, 2) or tx.shape[-1] < 2:
        raise InputError(f"tx_position_m must be [2] or [N, 2], got {tx.shape}")
    mask_array = None if mask is None else np.asarray(mask, dtype=bool)
    scalar = rx.ndim == 2 and tx.ndim == 1 and (mask_array is None or mask_array.ndim == 1)
    rx3 = rx[None, :, :2] if rx.ndim == 2 else rx[:, :, :2]
    tx2 = tx[None, :2] if tx.ndim == 1 else tx[:, :2]
    n_samples = max(rx3.shape[0], tx2.shape[0], 1 if mask_array is None else len(mask_array))
    if mask_array is not None and mask_array.ndim == 2:
        n_samples = mask_array.shape[0]
    n_receivers = rx3.shape[1]
    rx3 = np.broadcast_to(rx3, (n_samples, n_receivers, 2)) if rx3.shape[0] == 1 else rx3
    tx2 = np.broadcast_to(tx2, (n_samples, 2)) if tx2.shape[0] == 1 else tx2
    if mask_array is None:
        mask_array = np.ones((n_samples, n_receivers), dtype=bool)
    elif mask_array.ndim == 1:
        mask_array = np.broadcast_to(mask_array, (n_samples, n_receivers))
    if rx3.shape[0] != n_samples or tx2.shape[0] != n_samples:
        raise InputError("rx_position_m, tx_position_m and mask disagree on N")
    if mask_array.shape != (n_samples, n_receivers):
        raise InputError(f"mask must be [N, R] = {(n_samples, n_receivers)}")
    if np.any(mask_array[:, :, None] & ~np.isfinite(rx3)) or not np.all(np.isfinite(tx2)):
        raise InputError("positions of heard receivers and transmitters must be finite")

    delta_m = tx2[:, None, :] - np.where(mask_array[:, :, None], rx3, 0.0)
    distance_sq_m2 = np.sum(delta_m**2, axis=2)
    on_receiver = np.any(mask_array & (distance_sq_m2 == 0.0), axis=1)
    kk = 10.0 * path_loss_exponent / np.log(10.0)
    weight = mask_array / np.where(mask_array & (distance_sq_m2 > 0), distance_sq_m2, 1.0)
    gradient = kk * delta_m * weight[:, :, None]  # [N, R, 2], zero for masked-out receivers
    if not tx_power_known:
        gradient = np.concatenate([gradient, mask_array[:, :, None].astype(np.float64)], axis=2)
    fisher = np.einsum("nri,nrj->nij", gradient, gradient) / shadowing_sigma_db**2

    # Jacobi scaling makes the singularity test independent of units (position terms are
    # ~(kk / d)^2, the power term ~R): C = D^-1/2 F D^-1/2 has a unit diagonal.
    diagonal = np.einsum("nii->ni", fisher)
    scale = 1.0 / np.sqrt(np.where(diagonal > 0, diagonal, 1.0))
    scaled = fisher * scale[:, :, None] * scale[:, None, :]
    eigval = np.linalg.eigvalsh(scaled)
    singular = np.any(diagonal <= 0, axis=1) | (eigval[:, 0] <= _SINGULAR_EIGENVALUE)
    safe = np.where(singular[:, None, None], np.eye(fisher.shape[1]), scaled)
    inverse = np.linalg.inv(safe) * scale[:, :, None] * scale[:, None, :]
    bound_m = np.sqrt(np.clip(inverse[:, 0, 0] + inverse[:, 1, 1], 0.0, None))
    bound_m = np.where(singular, np.inf, bound_m)
    bound_m = np.where(on_receiver, np.nan, bound_m)
    return float(bound_m[0]) if scalar else bound_m


def crlb_rms_m(per_sample_m: np.ndarray) -> CrlbSummary:
    """RMS (metres) of per-sample CRLBs, sqrt(mean(b^2)), over finite values only.

    Non-finite bounds (inf: not identifiable; nan: undefined) are excluded and counted in
    `n_infinite`. Raises DataError when no sample has a finite bound.
    """
    bounds = np.asarray(per_sample_m, dtype=np.float64).reshape(-1)
    finite = np.isfinite(bounds)
    if not finite.any():
        raise DataError("no sample has a finite CRLB")
    rms = float(np.sqrt(np.mean(bounds[finite] ** 2)))
    return CrlbSummary(rms_m=rms, n_finite=int(finite.sum()), n_infinite=int((~finite).sum()))
