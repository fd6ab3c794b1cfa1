"""Whether a radio map smooths timestamped answers along tracks (on the answers' Gaussians or
on the map's own scores), and the smoothed ellipses' scale.

Step 5 of `training.radio_map_fit`, where the training transmissions have timestamps: the
motion of the campaign's transmitters is fitted on their own tracks (`models.tracks`), each
cross-fitting fold's held-out answers (as the runtime gives them: second pass, calibrated,
widened with time) are smoothed as one batch, on the answers' Gaussians and, where the batches
carry the map's scores of every grid point, on those; the smoother with the lower combined
out-of-fold median (`combined_median_m`) of the schemes is kept if it beats the answers one
by one. Its ellipses, widened where
the answers stray from the track (`models.tracks.disagreement`), then get the
correlation time (`models.tracks.crowding`), scale and widening with the time since the
nearest training transmission that bring the smoothed answers' 1- and 2-sigma coverage
closest to 0.393 / 0.865 over the schemes, as `training.radio_map_calibration` does for the
answers one by one. A campaign
whose consecutive transmissions are unrelated (many devices interleaved) fits a motion that
splits every gap, or smooths to no gain: no smoothing. Distances in metres, times in seconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from heimdall.evaluation.calibration import COVERAGE_TARGETS, time_widening_factor
from heimdall.evaluation.metrics import mahalanobis_sq
from heimdall.models.track_grids import ScoreGrid
from heimdall.models.tracks import TrackModel, smooth_tracks_for
from heimdall.training.cross_fitting import combined_median_m
from heimdall.training.radio_map_calibration import TIME_SCALES_S, TIME_WIDENING_AMOUNTS

__all__ = ["HeldOutBatch", "TrackCalibration", "calibrate_tracks"]

log = logging.getLogger(__name__)

#: Covariance scales tried for the smoothed answers.
TRACK_SCALES = np.exp(np.linspace(np.log(0.02), np.log(200.0), 400))
#: Correlation times tau_c (s) of the smoothed ellipses tried (`models.tracks.crowding`; 0: none).
#: Up to 512 s for a campaign whose answers share their error for minutes (a transmitter walking
#: through a stretch the map knows badly); every April fit kept 8-32 s.
CORRELATIONS_S = (0.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0)
#: Temperature of the radio map's scores as the smoother's measurements (1: the likelihood as
#: the map gives it). On saved scores of the April folds (seed 0, 5 random and 5 grid folds)
#: it gave medians of 48 / 124 m against 59 / 138 m on the answers' Gaussians; at 0.5, 48 /
#: 128 m; at 2, 51 / 124 m; at 4, 62 / 126 m (docs/REAL_DATA_EXPERIMENTS.md).
SCORE_TEMPERATURE = 1.0


@dataclass(frozen=True)
class HeldOutBatch:
    """One cross-fitting fold's held-out answers as the runtime gives them, with each answer's
    time (s) and its seconds to the nearest transmission its fold's map was fitted on."""

    scheme: str
    position_m: np.ndarray  # [n, 2]
    covariance_m2: np.ndarray  # [n, 2, 2]
    times_s: np.ndarray  # [n]
    truth_m: np.ndarray  # [n, 2]
    gap_s: np.ndarray  # [n]
    #: The fold's map's log-score of each answer over its grid [n, G] (`RadioMapNet`'s
    #: `grid_log_score`), and that grid; None where the localiser has none.
    log_score: np.ndarray | None = None
    grid: ScoreGrid | None = None
    #: Each answer's covariance widening one by one with its time since training [n] (1: none).
    widening: np.ndarray | None = None


@dataclass(frozen=True)
class TrackCalibration:
    """The smoother kept (None: none), each scheme's out-of-fold medians one by one and smoothed
    (m), and the held-out truths' squared Mahalanobis radii under the ellipses as the runtime
    gives them (smoothed where smoothed) with their schemes (empty without a smoother)."""

    model: TrackModel | None
    medians_m: dict[str, tuple[float, float]]
    mahalanobis_sq: np.ndarray
    schemes: np.ndarray


def _misfit_by_scale(radius_sq: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Summed over the groups, squared 1-/2-sigma coverage errors for each of `TRACK_SCALES`."""
    misfit = np.zeros(len(TRACK_SCALES))
    for group in np.unique(groups):
        part = np.sort(radius_sq[groups == group])
        for k, target in COVERAGE_TARGETS:
            misfit += (np.searchsorted(part, k * k * TRACK_SCALES, side="right") / len(part) - target) ** 2
    return misfit


def _calibrate(radius_sq: np.ndarray, gap_s: np.ndarray, groups: np.ndarray) -> tuple[float, float, float, float]:
    """(misfit, scale c, a, g0 s): radii / (c time_widening_factor(gap; a, g0)) closest to the
    coverage targets in every group, searched jointly (one scale alone serves either the
    answers amid the training transmissions or the later ones, not both)."""
    best = (np.inf, 1.0, 0.0, 0.0)
    for amount in TIME_WIDENING_AMOUNTS:
        for scale_s in TIME_SCALES_S if amount > 0 else (0.0,):
            factor = time_widening_factor(gap_s, amount, scale_s) if amount > 0 else np.ones(len(gap_s))
            misfit = _misfit_by_scale(radius_sq / factor, groups)
            i = int(np.argmin(misfit))
            if misfit[i] < best[0] - 1e-12:
                best = (float(misfit[i]), float(TRACK_SCALES[i]), float(amount), float(scale_s))
    return best


def _smoothed(
    model: TrackModel, batches: list[HeldOutBatch], correlations_s: tuple[float, ...] | None = None
) -> tuple[dict[str, tuple[float, float]], list, list, list]:
    """Each batch smoothed with `model`: each scheme's medians one by one and smoothed (m), and per
    batch the truths minus the smoothed answers, the spreads per correlation time in
    `correlations_s` (default `CORRELATIONS_S`), which were smoothed."""
    correlations_s = CORRELATIONS_S if correlations_s is None else correlations_s
    errors: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    deltas, spreads, flags = [], [], []
    for batch in batches:
        position, covariances, smoothed = smooth_tracks_for(batch.position_m, batch.covariance_m2, batch.times_s,
                                                            model, correlations_s, batch.log_score, batch.grid,
                                                            batch.widening)
        raw, smoothed_errors = errors.setdefault(batch.scheme, ([], []))
        raw.append(np.linalg.norm(batch.position_m - batch.truth_m, axis=1))
        smoothed_errors.append(np.linalg.norm(position - batch.truth_m, axis=1))
        deltas.append(batch.truth_m - position)
        spreads.append(covariances)
        flags.append(smoothed)
    medians = {s: (float(np.median(np.concatenate(r))), float(np.median(np.concatenate(m))))
               for s, (r, m) in errors.items()}
    return medians, deltas, spreads, flags


def calibrate_tracks(model: TrackModel | None, batches: list[HeldOutBatch]) -> TrackCalibration:
    """Smooth each held-out batch with `model` (on the answers' Gaussians, and on the map's scores
    where every batch has them); keep the smoother with the lower combined median if it beats the
    answers one by one, then choose the ellipses' correlation time, scale and widening with time
    on the same answers."""
    empty = TrackCalibration(None, {}, np.zeros(0), np.zeros(0, dtype=object))
    if model is None or not batches:
        return empty
    candidates = [model]
    if all(b.log_score is not None and b.grid is not None for b in batches):
        candidates.append(replace(model, score_temperature=SCORE_TEMPERATURE))
    # The answers do not depend on the correlation time: the candidates are told apart on one
    # smoothing each, the spreads of every correlation time computed for the one kept.
    if len(candidates) > 1:
        tried = [(candidate, _smoothed(candidate, batches, (0.0,))[0]) for candidate in candidates]
        model, _ = min(tried, key=lambda t: combined_median_m([m[1] for m in t[1].values()]))
    medians, deltas, spreads, flags = _smoothed(model, batches)
    before = combined_median_m([m[0] for m in medians.values()])
    after = combined_median_m([m[1] for m in medians.values()])
    log.info("radio map: out-of-fold medians one by one / smoothed along tracks%s %s (combined %.1f / %.1f m)",
             " on the map's scores" if model.score_temperature > 0 else "",
             {s: tuple(round(v, 1) for v in m) for s, m in medians.items()}, before, after)
    if not after < before:
        return TrackCalibration(None, medians, np.zeros(0), np.zeros(0, dtype=object))
    delta, smoothed = np.concatenate(deltas), np.concatenate(flags)
    groups = np.concatenate([np.full(len(b.times_s), b.scheme, dtype=object) for b in batches])
    gap_s = np.concatenate([b.gap_s for b in batches])
    gap_s = np.where(np.isfinite(gap_s), gap_s, 0.0)
    # Answers alone in their segment keep their ellipses (already calibrated one by one).
    raw_sq = mahalanobis_sq(delta, np.concatenate([b.covariance_m2 for b in batches]))
    best: tuple[float, ...] | None = None
    for index, correlation_s in enumerate(CORRELATIONS_S):
        covariance = np.concatenate([c[index] for c in spreads])
        radius_sq = mahalanobis_sq(delta, covariance)
        misfit, scale, amount, scale_s = _calibrate(radius_sq[smoothed], gap_s[smoothed], groups[smoothed])
        if best is None or misfit < best[0]:
            best = (misfit, correlation_s, scale, amount, scale_s)
            factor = scale * (time_widening_factor(gap_s, amount, scale_s) if amount > 0 else 1.0)
            final_sq = np.where(smoothed, radius_sq / factor, raw_sq)
    assert best is not None
    _, correlation_s, scale, amount, scale_s = best
    kept = replace(model, covariance_scale=scale, correlation_s=correlation_s, time_widening=amount,
                   time_scale_s=scale_s)
    log.info("radio map: smoothed ellipses with correlation time %g s, scale %.3g, widening a = %g, g0 = %g s",
             correlation_s, scale, amount, scale_s)
    return TrackCalibration(kept, medians, final_sq, groups)
