"""Localisation metrics: errors in metres, 2-D Gaussian calibration, uncertainty ellipses.

Positions and offsets are local east/north metres (east = x, north = y); covariances are
[..., 2, 2] in m^2 in east/north order. Orientations are degrees clockwise from north.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from heimdall.errors import DataError, InputError

__all__ = [
    "error_summary",
    "mahalanobis_sq",
    "ellipse_coverage",
    "gaussian_nll_2d",
    "covariance_to_ellipse",
    "ellipse_polygon_enu",
    "default_radii_m",
]

# Radii the seed documents ask about; every report includes them whatever the network scale.
_SEED_RADII_M = (30.0, 50.0, 100.0)


def _radius_key(radius_m: float) -> str:
    """Key of a radius in `accuracy_at_m`: the integer metres, or the shortest decimal form."""
    return str(int(radius_m)) if float(radius_m).is_integer() else f"{radius_m:g}"


def error_summary(errors_m: np.ndarray, radii_m: Sequence[float]) -> dict:
    """Summarise localisation errors (metres): centre, spread, tail, accuracy at radii.

    Returns a JSON-ready dict with `n`, `median_error_m`, `mean_error_m`, `rmse_m`,
    `p68_error_m`, `p90_error_m`, `p95_error_m` (linear-interpolated percentiles, metres) and
    `accuracy_at_m`: radius key (integer metres as a string, e.g. "30") -> fraction of
    samples with error <= radius.

    Raises DataError on empty input and InputError on negative or non-finite errors (a
    baseline that could not place a sample must be filtered by the caller, visibly).
    """
    errors = np.asarray(errors_m, dtype=np.float64).reshape(-1)
    if errors.size == 0:
        raise DataError("no errors to summarise (empty input)")
    if not np.all(np.isfinite(errors)):
        raise InputError(f"{int(np.sum(~np.isfinite(errors)))} errors are not finite")
    if np.any(errors < 0):
        raise InputError("errors must be non-negative distances in metres")
    radii = np.asarray(list(radii_m), dtype=np.float64)
    if radii.size and (not np.all(np.isfinite(radii)) or np.any(radii < 0)):
        raise InputError("radii must be finite and non-negative (metres)")
    p68, p90, p95 = np.percentile(errors, [68.0, 90.0, 95.0])
    accuracy = (errors[None, :] <= radii[:, None]).mean(axis=1) if radii.size else []
    return {
        "n": int(errors.size),
        "median_error_m": float(np.median(errors)),
        "mean_error_m": float(np.mean(errors)),
        "rmse_m": float(np.sqrt(np.mean(errors**2))),
        "p68_error_m": float(p68),
        "p90_error_m": float(p90),
        "p95_error_m": float(p95),
        "accuracy_at_m": {_radius_key(r): float(a) for r, a in zip(radii, accuracy)},
    }


def _validated_pair(delta_m: np.ndarray, covariance_m2: np.ndarray) -> tuple[np.ndarray, ...]:
    """Check shapes and positive definiteness; return dx, dy, sxx, sxy, syy, det (m, m^2)."""
    delta = np.asarray(delta_m, dtype=np.float64)
    cov = np.asarray(covariance_m2, dtype=np.float64)
    if delta.ndim == 1:
        delta = delta[None, :]
    if cov.ndim == 2:
        cov = cov[None, :, :]
    if delta.ndim != 2 or delta.shape[1] != 2:
        raise InputError(f"delta_m must be [N, 2] east/north metres, got {delta.shape}")
    if cov.shape != (delta.shape[0], 2, 2):
        raise InputError(f"covariance_m2 must be [{delta.shape[0]}, 2, 2], got {cov.shape}")
    sxx, sxy, syy = cov[:, 0, 0], 0.5 * (cov[:, 0, 1] + cov[:, 1, 0]), cov[:, 1, 1]
    det = sxx * syy - sxy**2
    if not (np.all(sxx > 0) and np.all(det > 0)):
        raise InputError("every covariance must be symmetric positive definite")
    return delta[:, 0], delta[:, 1], sxx, sxy, syy, det


def mahalanobis_sq(delta_m: np.ndarray, covariance_m2: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance d^T S^-1 d (dimensionless) per sample, shape [N].

    `delta_m` [N, 2] is truth minus prediction (or any offset) in metres, `covariance_m2`
    [N, 2, 2] in m^2.
    """
    dx, dy, sxx, sxy, syy, det = _validated_pair(delta_m, covariance_m2)
    # Closed-form 2x2 inverse: S^-1 = [[syy, -sxy], [-sxy, sxx]] / det.
    return (syy * dx**2 - 2.0 * sxy * dx * dy + sxx * dy**2) / det


def ellipse_coverage(delta_m: np.ndarray, covariance_m2: np.ndarray, k_sigma: float) -> float:
    """Fraction of offsets inside their k-sigma ellipse (Mahalanobis^2 <= k^2).

    For a calibrated 2-D Gaussian this is 1 - exp(-k^2 / 2): 0.393 at k = 1, 0.865 at k = 2.
    """
    if not k_sigma > 0:
        raise InputError("k_sigma must be positive")
    m2 = mahalanobis_sq(delta_m, covariance_m2)
    if m2.size == 0:
        raise DataError("no samples to measure coverage on")
    return float(np.mean(m2 <= k_sigma**2))


def gaussian_nll_2d(delta_m: np.ndarray, covariance_m2: np.ndarray) -> np.ndarray:
    """Negative log-likelihood (nats) of offsets under a zero-mean 2-D Gaussian, shape [N].

    Closed form log(2 pi) + 0.5 log det S + 0.5 d^T S^-1 d, with d in metres and S in m^2;
    the numpy reference for the training loss.
    """
    dx, dy, sxx, sxy, syy, det = _validated_pair(delta_m, covariance_m2)
    m2 = (syy * dx**2 - 2.0 * sxy * dx * dy + sxx * dy**2) / det
    return np.log(2.0 * np.pi) + 0.5 * np.log(det) + 0.5 * m2


def covariance_to_ellipse(
    covariance_m2: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-sigma ellipse of each covariance: (sigma_major_m, sigma_minor_m, orientation_deg).

    `covariance_m2` is [..., 2, 2] (east/north, m^2). Sigmas are in metres; the orientation
    is the major axis direction in degrees clockwise from north, in [0, 180) (an ellipse
    elongated east-west has 90). For a circle the orientation is arbitrary. Output arrays
    have the leading shape of the input.
    """
    cov = np.asarray(covariance_m2, dtype=np.float64)
    if cov.ndim < 2 or cov.shape[-2:] != (2, 2):
        raise InputError(f"covariance_m2 must be [..., 2, 2], got {cov.shape}")
    if not np.all(np.isfinite(cov)):
        raise InputError("covariance_m2 must be finite")
    sym = 0.5 * (cov + np.swapaxes(cov, -1, -2))
    eigval_m2, eigvec = np.linalg.eigh(sym)  # ascending eigenvalues
    if np.any(eigval_m2[..., 0] < -1e-9 * np.abs(eigval_m2[..., 1])):
        raise InputError("covariance_m2 must be positive semi-definite")
    sigma_major_m = np.sqrt(np.clip(eigval_m2[..., 1], 0.0, None))
    sigma_minor_m = np.sqrt(np.clip(eigval_m2[..., 0], 0.0, None))
    east, north = eigvec[..., 0, 1], eigvec[..., 1, 1]
    orientation_deg = np.mod(np.degrees(np.arctan2(east, north)), 180.0)
    orientation_deg = np.where(orientation_deg >= 180.0, 0.0, orientation_deg)
    return sigma_major_m, sigma_minor_m, orientation_deg


def ellipse_polygon_enu(
    center_m: np.ndarray,
    covariance_m2: np.ndarray,
    k_sigma: float = 1.0,
    n_points: int = 64,
) -> np.ndarray:
    """Closed ring [n_points + 1, 2] (east/north metres) tracing the k-sigma ellipse.

    The ring starts at the end of the major axis and its last point repeats the first.
    """
    center = np.asarray(center_m, dtype=np.float64).reshape(-1)
    cov = np.asarray(covariance_m2, dtype=np.float64)
    if center.shape != (2,) or cov.shape != (2, 2):
        raise InputError("center_m must be [2] and covariance_m2 [2, 2]")
    if not k_sigma > 0 or n_points < 3:
        raise InputError("k_sigma must be positive and n_points at least 3")
    eigval_m2, eigvec = np.linalg.eigh(0.5 * (cov + cov.T))
    if eigval_m2[0] < -1e-9 * abs(eigval_m2[1]):
        raise InputError("covariance_m2 must be positive semi-definite")
    # Columns scaled by the axis half-lengths, major axis first.
    axes_m = eigvec[:, ::-1] * (k_sigma * np.sqrt(np.clip(eigval_m2[::-1], 0.0, None)))
    angle_rad = np.linspace(0.0, 2.0 * np.pi, n_points, endpoint=False)
    ring = center + np.stack([np.cos(angle_rad), np.sin(angle_rad)], axis=1) @ axes_m.T
    return np.vstack([ring, ring[:1]])


def default_radii_m(scale_m: float) -> list[float]:
    """Accuracy radii (metres) fitting a network of extent `scale_m` metres.

    A 1-2-5 sequence from about scale/100 to about scale, plus the seed documents' 30, 50
    and 100 m; sorted and unique.
    """
    if not (np.isfinite(scale_m) and scale_m > 0):
        raise InputError("scale_m must be a positive finite distance in metres")
    low_m, high_m = scale_m / 100.0, scale_m
    radii = set(_SEED_RADII_M)
    for exponent in range(int(np.floor(np.log10(low_m))) - 1, int(np.ceil(np.log10(high_m))) + 1):
        for mantissa in (1.0, 2.0, 5.0):
            radius_m = float(mantissa * 10.0**exponent)
            # A small tolerance so that exactly scale/100 and scale are kept.
            if low_m * (1 - 1e-9) <= radius_m <= high_m * (1 + 1e-9):
                radii.add(float(np.round(radius_m, 12)))
    return sorted(radii)
