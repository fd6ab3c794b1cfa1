"""What `heimdall evaluate` reports: model errors, ellipse coverage, baselines and the CRLB."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from heimdall.data.layout import SampleArrays
from heimdall.errors import DataError
from heimdall.evaluation.baselines import GridSpec, mle_grid, weighted_centroid
from heimdall.evaluation.by_distance import by_distance_to_training
from heimdall.evaluation.calibration import GAUSSIAN_ELLIPSE95_SIGMAS, tail_ratio
from heimdall.evaluation.crlb import crlb_rms_m, rss_crlb_rmse_m
from heimdall.evaluation.metrics import (
    default_radii_m,
    ellipse_coverage,
    error_summary,
    gaussian_nll_2d,
    mahalanobis_sq,
)
from heimdall.geo import ReferencePoint, haversine_m, local_to_ground

__all__ = ["PhysicsModel", "Evaluation", "evaluate_predictions", "grid_for", "fit_path_loss_exponent"]

#: Coarse grid cells across the larger side of the search area (refined 16x by mle_grid).
_GRID_CELLS = 64


@dataclass(frozen=True)
class PhysicsModel:
    """What the classical estimators and the bound assume about propagation."""

    path_loss_exponent: float
    sigma_db: float
    reference_distance_m: float = 100.0


@dataclass(frozen=True)
class Evaluation:
    """The evaluation summary plus the per-sample arrays the report plots."""

    summary: dict[str, Any]
    truth_m: np.ndarray  # [N, 2] about the evaluation's reference
    position_m: np.ndarray  # [N, 2] model predictions
    covariance_m2: np.ndarray  # [N, 2, 2]
    errors_m: dict[str, np.ndarray]  # method -> [N] great-circle errors (NaN: not placed)
    crlb_m: np.ndarray | None  # [N] per-sample bound (synthetic data)
    n_heard: np.ndarray  # [N]


def grid_for(rx_position_m: np.ndarray, margin_m: float) -> GridSpec:
    """A search grid over the receivers' extent plus `margin_m`."""
    east = rx_position_m[..., 0]
    north = rx_position_m[..., 1]
    bounds = (east.min() - margin_m, east.max() + margin_m, north.min() - margin_m, north.max() + margin_m)
    step = max(bounds[1] - bounds[0], bounds[3] - bounds[2]) / _GRID_CELLS
    return GridSpec(*(float(b) for b in bounds), step_m=float(step))


def fit_path_loss_exponent(samples: SampleArrays, fallback: float = 3.0) -> float:
    """Least-squares path-loss exponent n of `rss = P_i - 10 n log10(d)` with a free P per sample.

    Uncalibrated stations and an unknown transmit power only shift a sample's readings, so
    removing each sample's mean over heard receivers leaves n alone. Needs true positions.
    """
    rx = samples.rx_position_m[..., :2].astype(np.float64)
    distance_m = np.linalg.norm(rx - samples.tx_position_m[:, None, :].astype(np.float64), axis=-1)
    log_d = np.log10(np.maximum(distance_m, 1.0))
    heard = samples.heard & np.isfinite(samples.rss_dbm)
    count = heard.sum(axis=1, keepdims=True)
    usable = (count[:, 0] >= 2)
    if not usable.any():
        return fallback
    rss = np.where(heard, samples.rss_dbm, 0.0).astype(np.float64)
    rss_c = np.where(heard, rss - rss.sum(axis=1, keepdims=True) / np.maximum(count, 1), 0.0)[usable]
    log_c = np.where(heard, log_d - np.where(heard, log_d, 0.0).sum(axis=1, keepdims=True) / np.maximum(count, 1), 0.0)[usable]
    denominator = 10.0 * float((log_c**2).sum())
    if denominator <= 0:
        return fallback
    return float(np.clip(-(rss_c * log_c).sum() / denominator, 1.5, 6.0))


def _errors_m(samples: SampleArrays, reference: ReferencePoint, position_m: np.ndarray) -> np.ndarray:
    lat, lon = local_to_ground(position_m[:, 0], position_m[:, 1], reference)
    return np.asarray(haversine_m(samples.tx_lat_deg, samples.tx_lon_deg, lat, lon))


def _baseline_summary(
    samples: SampleArrays, reference: ReferencePoint, estimate_m: np.ndarray, radii: list[float]
) -> tuple[dict[str, Any], np.ndarray]:
    """Error summary of a baseline; samples it cannot place (NaN) are counted, not scored."""
    placed = np.all(np.isfinite(estimate_m), axis=1)
    errors = np.full(len(samples), np.nan)
    errors[placed] = _errors_m(samples.select(placed), reference, estimate_m[placed])
    summary = error_summary(errors[placed], radii)
    summary["n_unplaced"] = int((~placed).sum())
    return summary, errors


def evaluate_predictions(
    samples: SampleArrays,
    reference: ReferencePoint,
    position_m: np.ndarray,
    covariance_m2: np.ndarray,
    physics: PhysicsModel,
    area_margin_m: float,
    synthetic: bool,
    extra_baselines: dict[str, np.ndarray] | None = None,
    training_position_m: np.ndarray | None = None,
    ellipse95_sigmas: float = GAUSSIAN_ELLIPSE95_SIGMAS,
) -> Evaluation:
    """Scores of predictions for `samples`, all expressed about `reference`.

    Errors are great-circle distances between predicted and true positions. Baselines run on
    the same samples; the CRLB (unknown transmit power, heard receivers only, Gaussian noise
    of the data's total RSS variance) is reported for synthetic data. With the training
    transmitters' positions [T,2] (measured data), `by_distance_to_training` breaks the
    model's error and coverage down by terciles of the distance to the nearest of them.
    `coverage_95` is the share of truths inside the ellipse of `ellipse95_sigmas` sigmas,
    which the model sized to hold 95%; `tail_ratio` (from 10 samples) how far one width
    could calibrate the ellipses (`evaluation.calibration.tail_ratio`).
    """
    if len(samples) == 0:
        raise DataError("no samples to evaluate")
    if not np.all(np.isfinite(samples.tx_lat_deg)):
        raise DataError("evaluation needs the true transmitter position of every sample")
    rx = samples.rx_position_m.astype(np.float64)
    extent = float(np.ptp(rx[..., 0][samples.present]) + np.ptp(rx[..., 1][samples.present])) / 2
    radii = default_radii_m(max(extent, 1.0))
    errors = _errors_m(samples, reference, position_m)
    truth = samples.tx_position_m.astype(np.float64)
    delta = truth - position_m
    result: dict[str, Any] = error_summary(errors, radii)
    result["coverage_1sigma"] = ellipse_coverage(delta, covariance_m2, 1.0)
    result["coverage_2sigma"] = ellipse_coverage(delta, covariance_m2, 2.0)
    result["coverage_95"] = ellipse_coverage(delta, covariance_m2, ellipse95_sigmas)
    result["mean_nll"] = float(np.mean(gaussian_nll_2d(delta, covariance_m2)))
    radius_sq = mahalanobis_sq(delta, covariance_m2)
    if np.isfinite(radius_sq).sum() >= 10:
        result["tail_ratio"] = tail_ratio(radius_sq)
    if training_position_m is not None:
        groups = by_distance_to_training(truth, training_position_m, errors, radius_sq,
                                         ellipse95_sigmas=ellipse95_sigmas)
        if groups:
            result["by_distance_to_training"] = groups
    centroid = weighted_centroid(rx, samples.rss_dbm.astype(np.float64), samples.heard)
    mle = mle_grid(
        rx,
        samples.rss_dbm.astype(np.float64),
        samples.heard,
        grid_for(rx[samples.present][None], area_margin_m),
        path_loss_exponent=physics.path_loss_exponent,
        shadowing_sigma_db=physics.sigma_db,
        reference_distance_m=physics.reference_distance_m,
    )
    errors_by_method = {"model": errors}
    result["baselines"] = {}
    for name, estimate in (("weighted_centroid", centroid), ("mle_grid", mle), *(extra_baselines or {}).items()):
        result["baselines"][name], errors_by_method[name] = _baseline_summary(samples, reference, estimate, radii)
    per_sample = None
    if synthetic:
        per_sample = rss_crlb_rmse_m(
            rx[..., :2], truth, physics.path_loss_exponent, physics.sigma_db, tx_power_known=False, mask=samples.heard
        )
        summary = crlb_rms_m(np.atleast_1d(per_sample))
        result["crlb_rmse_m"] = summary.rms_m
        result["crlb_median_m"] = float(np.median(np.atleast_1d(per_sample)[np.isfinite(per_sample)]))
        result["crlb_samples_unbounded"] = summary.n_infinite
    result["physics"] = {
        "path_loss_exponent": physics.path_loss_exponent,
        "sigma_db": physics.sigma_db,
    }
    return Evaluation(
        summary=result,
        truth_m=truth,
        position_m=position_m,
        covariance_m2=covariance_m2,
        errors_m=errors_by_method,
        crlb_m=None if per_sample is None else np.atleast_1d(per_sample),
        n_heard=samples.heard.sum(axis=1),
    )
