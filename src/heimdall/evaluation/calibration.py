"""Post-hoc variance calibration: one scale factor for predicted covariances, and the
widening of a covariance with the time since the nearest training transmission."""

from __future__ import annotations

import numpy as np

from heimdall.errors import DataError
from heimdall.evaluation.metrics import mahalanobis_sq

__all__ = [
    "COVERAGE_TARGETS", "GAUSSIAN_ELLIPSE95_SIGMAS", "GAUSSIAN_TAIL_RATIO", "HEAVY_TAIL_RATIO", "REGION_PROBABILITY",
    "ellipse95_sigmas",
    "fit_covariance_scale", "reachable_coverage_2sigma", "seconds_to_nearest", "tail_ratio", "time_widening_factor",
]

#: (k, fraction of truths a calibrated 2-D Gaussian's k-sigma ellipse holds) at 1 and 2 sigma.
COVERAGE_TARGETS = ((1.0, 1.0 - float(np.exp(-0.5))), (2.0, 1.0 - float(np.exp(-2.0))))
#: Share of truths the 95% ellipse (`ellipse95_sigmas`) is sized to hold.
REGION_PROBABILITY = 0.95
#: k of a calibrated 2-D Gaussian's ellipse holding `REGION_PROBABILITY`: sqrt(-2 ln 0.05) = 2.448.
GAUSSIAN_ELLIPSE95_SIGMAS = float(np.sqrt(-2.0 * np.log(1.0 - REGION_PROBABILITY)))
#: A calibrated 2-D Gaussian's radius holding 86.5% of truths over the one holding 39.3% (2 sigma / 1 sigma).
GAUSSIAN_TAIL_RATIO = 2.0
#: A tail ratio above this, a quarter above a Gaussian's, is read as heavy tails (the note
#: under `heimdall train`'s fit table).
HEAVY_TAIL_RATIO = 2.5


def fit_covariance_scale(delta_m: np.ndarray, covariance_m2: np.ndarray) -> float:
    """Factor c such that ellipses of c * covariance hold ~39.3% / 86.5% of errors at 1 / 2 sigma.

    Fitted on held-out (validation) errors by a log-spaced search minimising the squared
    coverage misfit at 1 and 2 sigma; a well-calibrated model gets c close to 1.
    """
    d2 = mahalanobis_sq(delta_m, covariance_m2)
    d2 = d2[np.isfinite(d2)]
    if d2.size < 10:
        raise DataError("need at least 10 validation samples to calibrate the covariance")
    scales = np.exp(np.linspace(np.log(0.01), np.log(100.0), 2001))
    misfit = np.zeros_like(scales)
    for k, target in COVERAGE_TARGETS:
        coverage = (d2[None, :] <= (k * k) * scales[:, None]).mean(axis=1)
        misfit += (coverage - target) ** 2
    return float(scales[int(np.argmin(misfit))])


def ellipse95_sigmas(mahalanobis_sq: np.ndarray, groups: np.ndarray | None = None) -> float:
    """k (in sigmas) of the smallest k-sigma ellipse that held `REGION_PROBABILITY` of the truths.

    `mahalanobis_sq` [N] are held-out truths' squared Mahalanobis radii under the calibrated
    covariances; with `groups` [N] (cross-fitting schemes) the ellipse must hold that share
    in every group, so k is the largest of the groups' own: one k answers for interpolation
    along measured paths, extrapolation to unmeasured places and later transmissions alike.
    Where errors are heavier-tailed than a Gaussian's, as on measured data, k exceeds the
    Gaussian's 2.448 (`GAUSSIAN_ELLIPSE95_SIGMAS`), so the ellipse still holds what it says.
    """
    radius_sq = np.asarray(mahalanobis_sq, dtype=np.float64)
    labels = np.zeros(radius_sq.shape, dtype=np.int64) if groups is None else np.asarray(groups)
    finite = np.isfinite(radius_sq)
    radius_sq, labels = radius_sq[finite], labels[finite]
    if radius_sq.size < 10:
        raise DataError(f"need at least 10 held-out samples to size the 95% ellipse, got {radius_sq.size}")
    largest = 0.0
    for group in np.unique(labels):
        part = np.sort(radius_sq[labels == group])
        # The smallest radius with at least 95% of the group at or inside it.
        count = int(np.ceil(REGION_PROBABILITY * len(part) - 1e-9))
        largest = max(largest, float(part[max(count, 1) - 1]))
    return float(np.sqrt(max(largest, 0.0)))


def _finite_radii_sq(mahalanobis_sq: np.ndarray, what: str) -> np.ndarray:
    radius_sq = np.asarray(mahalanobis_sq, dtype=np.float64).ravel()
    radius_sq = radius_sq[np.isfinite(radius_sq)]
    if radius_sq.size < 10:
        raise DataError(f"need at least 10 held-out samples for {what}, got {radius_sq.size}")
    return radius_sq


def tail_ratio(mahalanobis_sq: np.ndarray) -> float:
    """The Mahalanobis radius holding 86.5% of the truths over the one holding 39.3%.

    `GAUSSIAN_TAIL_RATIO` (2) where the errors follow the ellipses' shape; larger where a
    share of the answers is wrong by far more than the rest (heavy tails). Rescaling the
    ellipses by one factor does not change it, so where it is well above 2 (`HEAVY_TAIL_RATIO`)
    no single scale puts 0.393 and 0.865 of the truths inside the 1- and 2-sigma ellipses at once.
    """
    radius = np.sqrt(_finite_radii_sq(mahalanobis_sq, "the tail ratio"))
    low, high = np.quantile(radius, [COVERAGE_TARGETS[0][1], COVERAGE_TARGETS[1][1]])
    return float(high / low) if low > 0 else float("inf")


def reachable_coverage_2sigma(mahalanobis_sq: np.ndarray, coverage_1sigma: float = COVERAGE_TARGETS[0][1]) -> float:
    """The most truths a 2-sigma ellipse can hold while the 1-sigma one holds `coverage_1sigma`,
    for any rescaling of these ellipses that does not know which answers are wrong.

    Scaling every covariance by c gives the pair (F(c), F(4c)), F the share of squared radii
    `mahalanobis_sq` at or below its argument; scales drawn independently of the error (one
    per query, at random or from anything unrelated to the error) average such pairs, so
    what they reach is bounded by the upper concave envelope of those points through (0, 0)
    and (1, 1), read at `coverage_1sigma`. 0.865 for a calibrated Gaussian; below it, only
    a width that tracks which answers are wrong can reach both targets.
    """
    radius_sq = np.sort(_finite_radii_sq(mahalanobis_sq, "the reachable coverage"))
    scales = np.unique(np.concatenate([radius_sq, radius_sq / 4.0]))
    inside = lambda limit: np.searchsorted(radius_sq, limit, side="right") / radius_sq.size  # noqa: E731
    points = np.concatenate([[[0.0, 0.0]], np.stack([inside(scales), inside(4.0 * scales)], axis=1), [[1.0, 1.0]]])
    points = np.unique(points, axis=0)  # sorted by the 1-sigma share, then the 2-sigma one
    hull: list[tuple[float, float]] = []
    for x, y in points.tolist():  # Andrew's monotone chain, upper side: drop every left turn
        while len(hull) >= 2:
            (x0, y0), (x1, y1) = hull[-2], hull[-1]
            if (x1 - x0) * (y - y0) - (y1 - y0) * (x - x0) < 0:
                break
            hull.pop()
        hull.append((x, y))
    upper = np.array(hull)
    return float(np.interp(coverage_1sigma, upper[:, 0], upper[:, 1]))


def seconds_to_nearest(times_s: np.ndarray, training_times_s: np.ndarray) -> np.ndarray:
    """Seconds [N] from each of `times_s` [N] to the nearest of `training_times_s` (any order);
    NaN where a time is unknown (NaN) or no training time is known."""
    times_s = np.asarray(times_s, dtype=np.float64)
    known = np.sort(np.asarray(training_times_s, dtype=np.float64).ravel())
    known = known[np.isfinite(known)]
    gap = np.full(times_s.shape, np.nan)
    if known.size == 0:
        return gap
    finite = np.isfinite(times_s)
    t = times_s[finite]
    right = np.clip(np.searchsorted(known, t), 0, known.size - 1)
    left = np.clip(right - 1, 0, known.size - 1)
    gap[finite] = np.minimum(np.abs(t - known[left]), np.abs(t - known[right]))
    return gap


def time_widening_factor(gap_s: np.ndarray, amount: float, scale_s: float) -> np.ndarray:
    """Covariance multiplier 1 + a (1 - exp(-gap / g0)) for a query `gap_s` seconds from the
    nearest training transmission (`seconds_to_nearest`); a = `amount`, g0 = `scale_s`.

    1 where the gap is unknown (NaN) or a is 0; it grows with the gap and levels off at
    1 + a, so a transmission months after the campaign gets the widening fitted on ones
    minutes after it: in a campaign walked or driven with the transmitter, one sent seconds
    from a labelled transmission was sent metres from it, a later one was not.
    """
    gap_s = np.asarray(gap_s, dtype=np.float64)
    if amount <= 0 or scale_s <= 0:
        return np.ones(gap_s.shape)
    factor = 1.0 + amount * -np.expm1(-np.maximum(gap_s, 0.0) / scale_s)
    return np.where(np.isfinite(gap_s), factor, 1.0)
