"""Ellipse calibration of a radio map on its out-of-fold predictions.

Step 4 of `training.radio_map_fit`: the covariance temperature, the novelty widening, the
floor and the scale that bring the 1- and 2-sigma coverage of the cross-fitting schemes'
held-out predictions closest to 0.393 / 0.865, one setting for every scheme at once.
Then, where the samples have timestamps, the widening with the time since the nearest
training transmission (`calibrate_time_widening`). Distances in metres, fingerprint
distances in dB, times in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heimdall.evaluation.calibration import COVERAGE_TARGETS, time_widening_factor
from heimdall.evaluation.metrics import mahalanobis_sq
from heimdall.models.radio_map import NOVELTY_CAP_DB
from heimdall.training.radio_map_heldout import HeldOut, posterior_moments

__all__ = [
    "EllipseCalibration", "NOVELTY_CAP_DB", "NOVELTY_SCALES_DB", "TIME_SCALES_S", "TIME_WIDENING_AMOUNTS",
    "calibrate_ellipses", "calibrate_time_widening", "coverage_misfit", "floored_covariance", "novelty_factor",
]

#: Widening scales d0 (dB) tried for `novelty_factor` (0: none).
NOVELTY_SCALES_DB = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
#: Covariance temperatures tried, as multiples of the posterior's temperature.
COVARIANCE_TEMPERATURE_FACTORS = (1.0, 2.0, 4.0, 8.0)
#: Widening amounts a (0: none) and time scales g0 (s) tried for `time_widening_factor`.
TIME_WIDENING_AMOUNTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
TIME_SCALES_S = (5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


@dataclass(frozen=True)
class EllipseCalibration:
    """The chosen calibration and the squared Mahalanobis radius of each out-of-fold truth under it."""

    covariance_temperature: float
    novelty_db: float
    floor_m: float
    scale: float
    mahalanobis_sq: np.ndarray  # [N], in the order of the held-out terms given
    #: Each held-out truth minus its answer [N,2] (m) and the calibrated covariance [N,2,2] (m^2).
    delta_m: np.ndarray | None = None
    covariance_m2: np.ndarray | None = None


def novelty_factor(nearest_db: np.ndarray, novelty_db: float) -> np.ndarray:
    """Covariance multiplier 1 + (d / d0)^2 for a query d dB from its nearest training fingerprint.

    d is capped at `NOVELTY_CAP_DB` (the model's own); d0 = 0 turns the widening off. The
    same formula runs in `RadioMapNet.summarize`.
    """
    if novelty_db <= 0:
        return np.ones_like(nearest_db)
    return 1.0 + (np.minimum(nearest_db, NOVELTY_CAP_DB) / novelty_db) ** 2


def floored_covariance(covariance_m2: np.ndarray, floor_m: float, step_m: float, widening: np.ndarray) -> np.ndarray:
    """(covariance + floor^2 + step^2 / 12) x widening: the floor and the grid's quantisation
    variance widen with the query's novelty, in the order `RadioMapNet.summarize` applies them."""
    floored = covariance_m2 + (floor_m * floor_m + step_m * step_m / 12.0) * np.eye(2)
    return floored * widening[:, None, None]


def _scale_and_floor(
    delta_m: np.ndarray, covariance_m2: np.ndarray, widening: np.ndarray, step_m: float, groups: np.ndarray
) -> tuple[float, float, float]:
    """(misfit, scale, floor_m): scale * (covariance + floor^2 I) * widening best matching 1/2-sigma coverage.

    The misfit adds each group's (cross-fitting scheme's) squared coverage errors, so one
    setting must hold for interpolation and extrapolation alike.
    """
    floors = np.concatenate([[0.0], step_m * np.exp(np.linspace(np.log(0.25), np.log(40.0), 24))])
    scales = np.exp(np.linspace(np.log(0.005), np.log(50.0), 400))
    best = (np.inf, 1.0, 0.0)
    for floor in floors:
        d2 = mahalanobis_sq(delta_m, floored_covariance(covariance_m2, floor, step_m, widening))
        misfit = np.zeros(len(scales))
        for group in np.unique(groups):
            part = d2[groups == group]
            misfit += sum(
                ((part[None, :] <= k * k * scales[:, None]).mean(axis=1) - target) ** 2 for k, target in COVERAGE_TARGETS
            )
        i = int(np.argmin(misfit))
        if misfit[i] < best[0] - 1e-12:
            best = (float(misfit[i]), float(scales[i]), float(floor))
    return best


def calibrate_ellipses(
    held: list[HeldOut], groups: list[int], key: tuple[float, float], weight: float, temperature: float,
    step_m: float, point_mass: float = 0.0,
) -> EllipseCalibration:
    """Search covariance temperature x novelty d0 x floor x scale on the held-out terms `held`
    (one per fold; `groups[i]` is fold i's cross-fitting scheme) at the chosen fingerprint
    `key`, fingerprint `weight`, posterior `temperature` and fingerprint `point_mass`;
    `step_m` is the grid step."""
    deltas = np.concatenate(
        [h.truth_m - posterior_moments(h, key, weight, temperature, temperature, point_mass)[0] for h in held]
    )
    labels = np.concatenate([np.full(len(h.truth_m), g) for h, g in zip(held, groups, strict=True)])
    nearest = np.concatenate([h.nearest_db for h in held])
    best: tuple[float, ...] | None = None
    for factor in COVARIANCE_TEMPERATURE_FACTORS:
        covariances = np.concatenate(
            [posterior_moments(h, key, weight, temperature, temperature * factor, point_mass)[1] for h in held]
        )
        for novelty_db in NOVELTY_SCALES_DB:
            widening = novelty_factor(nearest, novelty_db)
            misfit, scale, floor = _scale_and_floor(deltas, covariances, widening, step_m, labels)
            if best is None or misfit < best[0]:
                best = (misfit, factor, novelty_db, floor, scale)
                best_covariances, best_widening = covariances, widening
    assert best is not None
    _, factor, novelty_db, floor, scale = best
    calibrated = floored_covariance(best_covariances, floor, step_m, best_widening) * scale
    d2 = mahalanobis_sq(deltas, calibrated)
    return EllipseCalibration(temperature * factor, novelty_db, floor, scale, d2, deltas, calibrated)


def coverage_misfit(mahalanobis_sq: np.ndarray, groups: np.ndarray) -> float:
    """Summed over the groups (cross-fitting schemes): squared 1- and 2-sigma coverage errors."""
    return float(sum(
        (np.mean(mahalanobis_sq[groups == g] <= k * k) - target) ** 2
        for g in np.unique(groups) for k, target in COVERAGE_TARGETS
    ))


def calibrate_time_widening(
    mahalanobis_sq: np.ndarray, gap_s: np.ndarray, groups: np.ndarray
) -> tuple[float, float]:
    """(a, g0 s) of `time_widening_factor` best matching the groups' 1-/2-sigma coverage.

    `mahalanobis_sq` [N] are the held-out truths' squared radii under the chosen
    calibration, `gap_s` [N] each one's seconds to the nearest transmission its fold was
    fitted on, `groups` [N] its cross-fitting scheme. The widening only widens (a >= 0, the
    calibration kept underneath), so queries amid the campaign keep their ellipses; (0, 0)
    unless a widening lowers the misfit, or where any gap is unknown.
    """
    if len(gap_s) == 0 or not np.all(np.isfinite(gap_s)):
        return 0.0, 0.0
    best = (coverage_misfit(mahalanobis_sq, groups), 0.0, 0.0)
    for amount in TIME_WIDENING_AMOUNTS[1:]:
        for scale_s in TIME_SCALES_S:
            misfit = coverage_misfit(mahalanobis_sq / time_widening_factor(gap_s, amount, scale_s), groups)
            if misfit < best[0] - 1e-12:
                best = (misfit, amount, scale_s)
    return best[1], best[2]
