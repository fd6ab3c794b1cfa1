"""Track smoothing: a batch of timestamped transmissions localised jointly along time.

A transmitter cannot jump across town between two transmissions seconds apart. Where the
transmissions of a batch carry timestamps, each answer (position and covariance) is taken as
a noisy measurement of where the transmitter was, and a hidden-Markov smoother over a grid
combines it with the answers just before and after:

- measurement: (1 - e) N(answer, covariance) + e uniform over the grid, e the share of
  answers that are confidently wrong (`TrackModel.outlier_share`); or, for a radio map whose
  fit chose it, (1 - e) the map's own likelihood of the readings at every point of its grid
  + e uniform, so a transmission the map cannot tell between two places keeps both
  (`models.track_grids`);
- motion between two transmissions dt seconds apart: with probability exp(-dt / tau) the
  same transmitter moved by a 2-D Gaussian of per-axis sigma(dt) = v dt / sqrt(1 + dt / T)
  (straight lines over short gaps, a random walk over long ones); otherwise anywhere on the
  grid (another transmitter, or the same one much later).

v, T and tau are fitted by maximum likelihood on the training transmissions' own tracks
(`fit_motion`). The smoothed answer is the geometric median of
each transmission's marginal posterior; its covariance the posterior's second moment about it,
widened where the answers around it in time stray from the smoothed track by more than their
own ellipses allow (`disagreement`), times a scale that `training.track_calibration` fits on
held-out answers. Distances in metres, times in seconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from heimdall.models.track_grids import GaussianSegment, ScoreGrid, ScoreSegment

__all__ = [
    "DISAGREEMENT_WINDOW_S", "SMOOTHING_SPEED_FACTOR", "MotionModel", "ScoreGrid", "TrackModel", "crowding",
    "disagreement",
    "fit_motion", "motion_sigma_m", "smooth_tracks", "smooth_tracks_for",
]

#: A gap with a jump probability above this splits the batch into independent segments.
SEGMENT_JUMP_PROBABILITY = 0.999
#: Transmissions apart in time order whose pairs `fit_motion` scores (lags 1..N).
MOTION_LAGS = 8
SPEEDS_MPS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
BALLISTIC_S = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 1.0e9)
JUMP_S = (1.0, 4.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 1.0e9)
#: The smoother's speed over the fitted one: the motion it assumes must also absorb answers
#: whose error moves between transmissions. On the April folds (seed 0, 5 folds each) 2x the
#: fitted speed gave grid / time / random medians 138 / 196 / 59 m, 1x 134 / 227 / 65 m
#: (as localised one by one: 162 / 234 / 60 m).
SMOOTHING_SPEED_FACTOR = 2.0
#: Time constant (s) over which `disagreement` averages the answers' strays from the track. On
#: the April folds (seed 0, 5 folds each of random / grid / time), widening by 1 + that average
#: brought the smoothed ellipses' summed coverage misfit from 0.037 to 0.016 at 60 s (0.017 at
#: 30 s, 0.016 at 120 s, 0.017 at 300 s); docs/REAL_DATA_EXPERIMENTS.md.
DISAGREEMENT_WINDOW_S = 60.0


@dataclass(frozen=True)
class MotionModel:
    """How far a transmitter moves between transmissions: v (m/s), T (s), tau (s)."""

    speed_mps: float
    ballistic_s: float
    jump_s: float

    def sigma_m(self, gap_s: np.ndarray | float) -> np.ndarray:
        return motion_sigma_m(np.asarray(gap_s, dtype=np.float64), self.speed_mps, self.ballistic_s)

    def jump_probability(self, gap_s: np.ndarray | float) -> np.ndarray:
        return -np.expm1(-np.asarray(gap_s, dtype=np.float64) / self.jump_s)


@dataclass(frozen=True)
class TrackModel:
    """A fitted motion model with the smoother's measurement settings and its ellipses' calibration:
    the correlation time tau_c (s) of `crowding` (0: answers independent), a scale, the
    widening (a, g0 s) with the time since the nearest training transmission, the time
    constant (s) of the widening by `disagreement` (0: none, as bundles stored before it),
    and where the radio map's own scores are the measurements (`track_grids.ScoreSegment`),
    their temperature and the map's grid (0 and None: each answer's Gaussian, as bundles
    stored before)."""

    motion: MotionModel
    outlier_share: float = 0.1
    covariance_scale: float = 1.0
    correlation_s: float = 0.0
    time_widening: float = 0.0
    time_scale_s: float = 0.0
    disagreement_window_s: float = 0.0
    score_temperature: float = 0.0
    score_grid: ScoreGrid | None = None

    def to_dict(self) -> dict[str, Any]:
        values = {k: v for k, v in asdict(self).items() if k not in ("motion", "score_grid")}
        if self.score_grid is not None:
            values["score_grid"] = self.score_grid.to_dict()
        return {**asdict(self.motion), **values}

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> TrackModel | None:
        """The model a bundle's config stores (`to_dict`); None where it stores none."""
        if not values:
            return None
        motion = MotionModel(float(values["speed_mps"]), float(values["ballistic_s"]), float(values["jump_s"]))
        return cls(motion, float(values["outlier_share"]), float(values["covariance_scale"]),
                   float(values.get("correlation_s", 0.0)), float(values.get("time_widening", 0.0)),
                   float(values.get("time_scale_s", 0.0)), float(values.get("disagreement_window_s", 0.0)),
                   float(values.get("score_temperature", 0.0)), ScoreGrid.from_dict(values.get("score_grid")))

    @classmethod
    def for_training(cls, times_s: np.ndarray, position_m: np.ndarray) -> TrackModel | None:
        """The smoother for a campaign: its fitted motion (`fit_motion`) at
        `SMOOTHING_SPEED_FACTOR` times the speed, scale 1, widened by `disagreement` over
        `DISAGREEMENT_WINDOW_S`; None where the motion cannot be fitted."""
        motion = fit_motion(times_s, position_m)
        if motion is None:
            return None
        return cls(MotionModel(motion.speed_mps * SMOOTHING_SPEED_FACTOR, motion.ballistic_s, motion.jump_s),
                   disagreement_window_s=DISAGREEMENT_WINDOW_S)


def motion_sigma_m(gap_s: np.ndarray, speed_mps: float, ballistic_s: float) -> np.ndarray:
    """Per-axis sigma (m) of the move over `gap_s`: v dt / sqrt(1 + dt / T)."""
    return speed_mps * gap_s / np.sqrt(1.0 + gap_s / ballistic_s)


def fit_motion(times_s: np.ndarray, position_m: np.ndarray) -> MotionModel | None:
    """Maximum-likelihood (v, T, tau) over a grid, from pairs of transmissions 1..`MOTION_LAGS`
    apart in time order; None with fewer than 10 timestamped pairs.

    A pair dt apart at distance d scores (1 - p) Rayleigh(d; sigma(dt)) + p f(d), p = 1 -
    exp(-dt / tau), f the density of the distance between two of the campaign's positions
    taken apart in time (half the campaign apart: a transmission from anywhere it went).
    """
    known = np.isfinite(times_s)
    order = np.argsort(times_s[known], kind="stable")
    t, xy = times_s[known][order], position_m[known][order]
    if len(t) < 11:
        return None
    gaps, dists = [], []
    for lag in range(1, min(MOTION_LAGS, len(t) - 1) + 1):
        gaps.append(t[lag:] - t[:-lag])
        dists.append(np.linalg.norm(xy[lag:] - xy[:-lag], axis=1))
    gap, dist = np.concatenate(gaps), np.concatenate(dists)
    keep = gap > 0
    gap, dist = gap[keep], np.maximum(dist[keep], 1.0)
    if len(gap) < 10:
        return None
    far = _far_density(np.linalg.norm(xy - np.roll(xy, len(xy) // 2, axis=0), axis=1), dist)
    best: tuple[float, MotionModel] | None = None
    for speed in SPEEDS_MPS:
        for ballistic in BALLISTIC_S:
            sigma2 = motion_sigma_m(gap, speed, ballistic) ** 2
            near = dist / sigma2 * np.exp(-0.5 * dist * dist / sigma2)
            for jump in JUMP_S:
                p = -np.expm1(-gap / jump)
                log_likelihood = float(np.sum(np.log((1.0 - p) * near + p * far + 1e-300)))
                if best is None or log_likelihood > best[0]:
                    best = (log_likelihood, MotionModel(speed, ballistic, jump))
    assert best is not None
    return best[1]


def _far_density(apart_m: np.ndarray, distance_m: np.ndarray, bins: int = 30) -> np.ndarray:
    """Density (1/m) at `distance_m` of the distances `apart_m`, a histogram floored so that no
    distance is impossible."""
    top = max(float(apart_m.max()), float(distance_m.max()), 1.0) * (1.0 + 1e-9)
    counts, edges = np.histogram(apart_m, bins=bins, range=(0.0, top))
    density = (counts + 0.5) / ((len(apart_m) + 0.5 * bins) * (edges[1] - edges[0]))
    return density[np.minimum((distance_m / (edges[1] - edges[0])).astype(int), bins - 1)]


def _window_sum(times_s: np.ndarray, values: np.ndarray, window_s: float) -> np.ndarray:
    """sum_j exp(-|t_i - t_j| / window) v_j over a time-ordered segment; O(n) by two recursions."""
    n = len(times_s)
    decay = np.exp(-np.diff(times_s) / window_s)
    before, after = np.zeros(n), np.zeros(n)
    for i in range(1, n):
        before[i] = decay[i - 1] * (values[i - 1] + before[i - 1])
    for i in range(n - 2, -1, -1):
        after[i] = decay[i] * (values[i + 1] + after[i + 1])
    return values + before + after


def crowding(times_s: np.ndarray, correlation_s: float) -> np.ndarray:
    """sum_j exp(-|t_i - t_j| / tau_c) over a time-ordered segment (1 for a lone answer): how many
    answers share each one's error, answers tau_c apart sharing it by 1/e."""
    n = len(times_s)
    if correlation_s <= 0 or n == 0:
        return np.ones(n)
    return _window_sum(times_s, np.ones(n), correlation_s)


def disagreement(
    answer_m: np.ndarray, covariance_m2: np.ndarray, smoothed_m: np.ndarray, times_s: np.ndarray, window_s: float
) -> np.ndarray:
    """Covariance multiplier [n] 1 + D for a time-ordered segment's smoothed answers, D the
    average, weighted by exp(-|dt| / `window_s`), of the squared Mahalanobis distances of the
    answers one by one (`answer_m` [n,2] m, `covariance_m2` [n,2,2] m^2) from the smoothed
    track (`smoothed_m` [n,2] m). 1 where `window_s` is 0.

    The track is as trustworthy as the answers it was made of: where the answers around a
    transmission scatter about the track by more than their ellipses say (a stretch where
    the map confuses two places), its smoothed answer is wrong more often than its spread says.
    """
    n = len(times_s)
    if window_s <= 0 or n == 0:
        return np.ones(n)
    delta = answer_m - smoothed_m
    stray_sq = np.einsum("ni,nij,nj->n", delta, np.linalg.inv(covariance_m2), delta)
    return 1.0 + _window_sum(times_s, stray_sq, window_s) / _window_sum(times_s, np.ones(n), window_s)


def _segment(
    position_m: np.ndarray, covariance_m2: np.ndarray, times_s: np.ndarray, model: TrackModel,
    log_score: np.ndarray | None, grid: ScoreGrid | None, score_widening: np.ndarray | None,
) -> GaussianSegment | ScoreSegment:
    """The lattice one segment is smoothed on: the map's scores where the model and the caller have
    them (each at the model's temperature times its `score_widening`), the answers' Gaussians otherwise."""
    grid = grid or model.score_grid
    if model.score_temperature > 0 and log_score is not None and grid is not None:
        widening = np.ones(len(times_s)) if score_widening is None else np.asarray(score_widening, dtype=np.float64)
        return ScoreSegment(log_score, grid, times_s, model.motion, model.outlier_share,
                            model.score_temperature * widening)
    return GaussianSegment(position_m, covariance_m2, times_s, model.motion, model.outlier_share)


def smooth_tracks_for(
    position_m: np.ndarray, covariance_m2: np.ndarray, times_s: np.ndarray, model: TrackModel,
    correlations_s: tuple[float, ...], log_score: np.ndarray | None = None, grid: ScoreGrid | None = None,
    score_widening: np.ndarray | None = None,
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """`smooth_tracks` before its scale and widening with time, with the spread of each
    correlation time in `correlations_s` (times `disagreement`): positions [N,2], one
    covariance array [N,2,2] per correlation time, and which answers were smoothed [N].

    Where the model smooths on scores (`TrackModel.score_temperature` > 0) and `log_score`
    [N,G] is given (the radio map's `grid_log_score` on `grid`, default the model's
    `score_grid`), those are the measurements (`track_grids.ScoreSegment`), each flattened by
    its `score_widening` [N] (the widening its covariance one by one got with the time since
    the nearest training transmission: the map is that much less sure of it); otherwise each
    answer's Gaussian (`track_grids.GaussianSegment`)."""
    position_m = np.asarray(position_m, dtype=np.float64)
    covariance_m2 = np.asarray(covariance_m2, dtype=np.float64)
    out_position = position_m.copy()
    out_covariances = [covariance_m2.copy() for _ in correlations_s]
    smoothed = np.zeros(len(position_m), dtype=bool)
    known = np.flatnonzero(np.isfinite(times_s))
    if known.size == 0:
        return out_position, out_covariances, smoothed
    order = known[np.argsort(times_s[known], kind="stable")]
    gaps = np.diff(times_s[order])
    splits = np.flatnonzero(model.motion.jump_probability(gaps) > SEGMENT_JUMP_PROBABILITY) + 1
    for segment in np.split(order, splits):
        if len(segment) < 2:
            continue  # nothing to smooth with: the answer stands
        times = times_s[segment]
        lattice = _segment(position_m[segment], covariance_m2[segment], times, model,
                           None if log_score is None else log_score[segment], grid,
                           None if score_widening is None else np.asarray(score_widening)[segment])
        # The answer: every transmission as its own evidence.
        out_position[segment], plain = lattice.smooth(np.ones(len(segment)))
        strays = disagreement(position_m[segment], covariance_m2[segment], out_position[segment], times,
                              model.disagreement_window_s)[:, None, None]
        for out, correlation_s in zip(out_covariances, correlations_s, strict=True):
            # The ellipse, about that answer: answers seconds apart share their errors (the same
            # readings, the same confusion with another place), so each counts 1/crowding of one.
            spread = plain if correlation_s <= 0 else lattice.smooth(crowding(times, correlation_s),
                                                                     out_position[segment])[1]
            out[segment] = spread * strays
        smoothed[segment] = True
    return out_position, out_covariances, smoothed


def smooth_tracks(
    position_m: np.ndarray, covariance_m2: np.ndarray, times_s: np.ndarray, model: TrackModel,
    widening: np.ndarray | None = None, log_score: np.ndarray | None = None,
    score_widening: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each timestamped answer smoothed with its neighbours in time.

    Returns positions [N,2] (m), covariances [N,2,2] (m^2) and which answers were smoothed [N]
    (bool). A smoothed covariance is the spread of the smoother run with correlated answers
    counted once (`TrackModel.correlation_s`), times `disagreement` (over the model's
    `disagreement_window_s`), times `covariance_scale` and times `widening`
    [N] where given (the runtime's: `evaluation.calibration.time_widening_factor` of the time
    since the nearest training transmission, with the model's (a, g0)). Answers without a finite timestamp, or alone in their segment, come
    back as given; gaps where the transmitter may well have jumped
    (`SEGMENT_JUMP_PROBABILITY`) split the batch into independent segments. `log_score` [N,G]:
    the radio map's `grid_log_score` on the model's `score_grid`, the measurements where the
    model smooths on scores, each flattened by its `score_widening` [N] (`smooth_tracks_for`).
    """
    position, (covariance,), smoothed = smooth_tracks_for(position_m, covariance_m2, times_s, model,
                                                         (model.correlation_s,), log_score, None, score_widening)
    factor = np.full(len(position), model.covariance_scale)
    if widening is not None:
        factor = factor * np.asarray(widening, dtype=np.float64)
    covariance = np.where(smoothed[:, None, None], covariance * factor[:, None, None], covariance)
    return position, covariance, smoothed
