"""Fit the feature-level propagation model to measured links (pure numpy, no I/O).

One row per heard link m: the reported RSS (dB in the receiver's own scale), the
transmitter-receiver distance, the receiver's index and the transmission's index. The model
fitted is the simulator's:

    rss_m = a_s + o_r - 10 n log10(d_m / d0) + e_m

with a_s the transmission's level (transmit power and body loss, which vary per
transmission and which the localiser treats as unknown), o_r the receiver's offset (an
uncalibrated device's scale) and e_m the residual: static terrain shadowing (spatially
correlated from one transmitter position to the next, for the same receiver) plus
per-transmission shadowing and fading. The residuals' empirical variogram, fitted by an
exponential model nugget + sill (1 - exp(-h / L)), splits e into the two: the sill is the
terrain field's variance, L its correlation length, the nugget the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heimdall.errors import DataError, InputError

__all__ = [
    "LinkFit",
    "fit_links",
    "fit_plain_log_distance",
    "Variogram",
    "empirical_variogram",
    "fit_exponential_variogram",
    "krige_residuals",
]


@dataclass(frozen=True)
class LinkFit:
    """Least-squares fit of `rss = a_s + o_r - 10 n log10(d / d0)` over heard links."""

    path_loss_exponent: float
    #: Mean over transmissions of a_s (dB at d0 in the receivers' mean scale).
    intercept_db: float
    #: o_r per receiver (dB, mean 0 over receivers with data; NaN for none).
    rx_offset_db: np.ndarray  # [R]
    #: a_s - intercept per transmission (dB): its spread is the transmit-level spread.
    sample_level_db: np.ndarray  # [S]
    residual_db: np.ndarray  # [M]
    reference_distance_m: float

    def predict_db(self, distance_m: np.ndarray, rx_index: np.ndarray) -> np.ndarray:
        """RSS (dB, reported scale) of links of an unknown transmission at its mean level."""
        offset = np.nan_to_num(self.rx_offset_db[rx_index], nan=0.0)
        return self.intercept_db + offset - _log_term(distance_m, self.path_loss_exponent, self.reference_distance_m)


def _log_term(distance_m: np.ndarray, exponent: float, reference_distance_m: float) -> np.ndarray:
    # The simulator clamps distances below d0 to d0; the fit does the same.
    return 10.0 * exponent * np.log10(np.maximum(distance_m, reference_distance_m) / reference_distance_m)


def _check_links(distance_m: np.ndarray, rss_db: np.ndarray, *indices: np.ndarray) -> None:
    shapes = {a.shape for a in (distance_m, rss_db, *indices)}
    if len(shapes) != 1 or distance_m.ndim != 1:
        raise InputError(f"link arrays must be 1-D of one length, got shapes {sorted(shapes)}")
    if distance_m.size < 3:
        raise DataError(f"a propagation fit needs at least 3 heard links, got {distance_m.size}")
    if not (np.all(np.isfinite(distance_m)) and np.all(np.isfinite(rss_db))):
        raise InputError("link distances and RSS must be finite")


def fit_links(
    distance_m: np.ndarray,
    rss_db: np.ndarray,
    rx_index: np.ndarray,
    sample_index: np.ndarray,
    num_receivers: int,
    reference_distance_m: float = 100.0,
    exponent: float | None = None,
) -> LinkFit:
    """Fit exponent, receiver offsets and transmission levels jointly (least squares);
    with `exponent`, the exponent is held at that value (a censored estimate where most
    links are not heard) and only the offsets and levels are fitted.

    Every coefficient is identified from differences within a transmission (the exponent
    from how RSS falls across receivers at different distances) and across transmissions
    heard by the same receiver (the offsets). Solved by alternating projections: given the
    exponent, offsets and levels are two-way means; given them, the exponent is a 1-D
    regression; 200 sweeps converge to well below 0.01 dB on the POWDER data.
    """
    distance_m = np.asarray(distance_m, dtype=np.float64)
    rss_db = np.asarray(rss_db, dtype=np.float64)
    rx_index = np.asarray(rx_index, dtype=np.int64)
    sample_index = np.asarray(sample_index, dtype=np.int64)
    _check_links(distance_m, rss_db, rx_index, sample_index)
    _, sample_index = np.unique(sample_index, return_inverse=True)
    num_samples = int(sample_index.max()) + 1
    x = _log_term(distance_m, 1.0, reference_distance_m)  # 10 log10(d / d0)
    rx_count = np.bincount(rx_index, minlength=num_receivers).astype(np.float64)
    sample_count = np.bincount(sample_index, minlength=num_samples).astype(np.float64)
    offset = np.zeros(num_receivers)
    level = np.zeros(num_samples)
    fixed = exponent is not None
    exponent = float(exponent) if fixed else 3.0
    for _ in range(200):
        level = np.bincount(sample_index, rss_db + exponent * x - offset[rx_index], num_samples) / sample_count
        offset = np.bincount(rx_index, rss_db + exponent * x - level[sample_index], num_receivers) / np.maximum(rx_count, 1.0)
        target = level[sample_index] + offset[rx_index] - rss_db
        # Regress on x within both groupings: centring x by the same two-way means would be
        # exact; the alternating sweeps reach the same fixed point.
        if not fixed:
            exponent = float(np.dot(x - x.mean(), target - target.mean()) / max(np.dot(x - x.mean(), x - x.mean()), 1e-12))
    if not 1.0 < exponent <= 6.0:
        raise DataError(f"the fitted path-loss exponent {exponent:.2f} is outside (1, 6]; the links do not fall with distance")
    has_data = rx_count > 0
    shift = float(offset[has_data].mean())
    offset = np.where(has_data, offset - shift, np.nan)
    level = level + shift
    intercept = float(level.mean())
    residual = rss_db - (level[sample_index] + offset[rx_index] - exponent * x)
    return LinkFit(exponent, intercept, offset, level - intercept, residual, float(reference_distance_m))


def fit_plain_log_distance(
    distance_m: np.ndarray, rss_db: np.ndarray, reference_distance_m: float = 100.0
) -> tuple[float, float]:
    """(exponent, intercept dB at d0) of `rss = A - 10 n log10(d / d0)`: one line, no offsets."""
    distance_m = np.asarray(distance_m, dtype=np.float64)
    rss_db = np.asarray(rss_db, dtype=np.float64)
    _check_links(distance_m, rss_db)
    x = _log_term(distance_m, 1.0, reference_distance_m)
    slope, intercept = np.polyfit(x, rss_db, 1)
    return float(-slope), float(intercept)


@dataclass(frozen=True)
class Variogram:
    """Empirical semivariogram of residuals: gamma(h) = mean of (e_i - e_j)^2 / 2 per lag bin."""

    lag_m: np.ndarray  # [B] bin centres (mean pair distance)
    gamma_db2: np.ndarray  # [B]
    pairs: np.ndarray  # [B]


def empirical_variogram(
    tx_position_m: np.ndarray,
    residual_db: np.ndarray,
    rx_index: np.ndarray,
    max_lag_m: float,
    num_bins: int = 15,
) -> Variogram:
    """Semivariogram of same-receiver residual pairs binned by transmitter separation (m).

    Pairs are formed within a receiver only: the static field is one per station, so two
    receivers' residuals at one place are not samples of the same field.
    """
    tx = np.asarray(tx_position_m, dtype=np.float64)
    residual_db = np.asarray(residual_db, dtype=np.float64)
    rx_index = np.asarray(rx_index, dtype=np.int64)
    edges = np.linspace(0.0, max_lag_m, num_bins + 1)
    sums = np.zeros(num_bins)
    lag_sums = np.zeros(num_bins)
    counts = np.zeros(num_bins)
    for r in np.unique(rx_index):
        rows = np.flatnonzero(rx_index == r)
        if rows.size < 2:
            continue
        i, j = np.triu_indices(rows.size, k=1)
        h = np.linalg.norm(tx[rows[i]] - tx[rows[j]], axis=1)
        half_sq = 0.5 * (residual_db[rows[i]] - residual_db[rows[j]]) ** 2
        b = np.digitize(h, edges) - 1
        keep = (b >= 0) & (b < num_bins)
        sums += np.bincount(b[keep], half_sq[keep], num_bins)
        lag_sums += np.bincount(b[keep], h[keep], num_bins)
        counts += np.bincount(b[keep], minlength=num_bins)
    used = counts > 0
    if used.sum() < 3:
        raise DataError("too few residual pairs for a variogram (need pairs in at least 3 distance bins)")
    return Variogram(lag_sums[used] / counts[used], sums[used] / counts[used], counts[used])


def fit_exponential_variogram(variogram: Variogram) -> tuple[float, float, float]:
    """(nugget dB^2, sill dB^2, correlation length m) of nugget + sill (1 - exp(-h / L)).

    Weighted least squares (weights: pair counts) over a log-spaced grid of L; for each L
    the model is linear in nugget and sill, solved with both kept >= 0.
    """
    h, gamma, w = variogram.lag_m, variogram.gamma_db2, variogram.pairs.astype(np.float64)
    best: tuple[float, float, float, float] | None = None
    sqrt_w = np.sqrt(w)
    for length_m in np.geomspace(max(h.min() / 4.0, 1.0), 20.0 * h.max(), 200):
        basis = np.column_stack([np.ones_like(h), 1.0 - np.exp(-h / length_m)])
        coef, *_ = np.linalg.lstsq(basis * sqrt_w[:, None], gamma * sqrt_w, rcond=None)
        coef = np.maximum(coef, 0.0)
        cost = float(np.sum(w * (basis @ coef - gamma) ** 2))
        if best is None or cost < best[0]:
            best = (cost, float(coef[0]), float(coef[1]), float(length_m))
    assert best is not None
    return best[1], best[2], best[3]


def krige_residuals(
    tx_position_m: np.ndarray,
    residual_db: np.ndarray,
    rx_index: np.ndarray,
    num_receivers: int,
    points_m: np.ndarray,
    nugget_db2: float,
    sill_db2: float,
    correlation_m: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Simple kriging of each receiver's residuals onto `points_m` [G, 2].

    Exponential covariance sill exp(-h / L) plus the nugget on the diagonal; zero mean.
    Returns (mean [R, G] dB, variance [R, G] dB^2 of the static field left unexplained);
    a receiver without residuals gets mean 0 and variance `sill_db2`.
    """
    mean = np.zeros((num_receivers, points_m.shape[0]))
    variance = np.full((num_receivers, points_m.shape[0]), float(sill_db2))
    if sill_db2 <= 0.0:
        return mean, variance
    for r in range(num_receivers):
        rows = np.flatnonzero(rx_index == r)
        if rows.size == 0:
            continue
        x = tx_position_m[rows]
        h = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=-1)
        cov = sill_db2 * np.exp(-h / correlation_m) + max(nugget_db2, 1e-6) * np.eye(rows.size)
        cross = sill_db2 * np.exp(-np.linalg.norm(points_m[:, None, :] - x[None, :, :], axis=-1) / correlation_m)
        factor = np.linalg.cholesky(cov)
        weights = np.linalg.solve(factor, cross.T)  # L^-1 k, [n, G]
        alpha = np.linalg.solve(factor.T, np.linalg.solve(factor, residual_db[rows]))
        mean[r] = cross @ alpha
        variance[r] = np.maximum(sill_db2 - np.sum(weights**2, axis=0), 0.0)
    return mean, variance
