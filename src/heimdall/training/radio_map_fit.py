"""Fitting a `RadioMapNet` to labelled measurements, hyperparameters chosen on held-out folds.

`fit_radio_map` is what `heimdall train` runs on a measured dataset. Steps:

0. How to read the file, whichever predicts held-out folds better (middle L, each at its
   best fingerprint settings; `training.radio_map_readings`): when some samples lack a fixed station,
   whether it heard nothing (files listing only the receivers that heard) or is unknown
   (dropped readings); where stations listened and heard nothing, whether the path-loss
   exponent is the censored (Tobit) estimate of `training.censored_physics`, held fixed in
   every map, or least squares on the heard readings.
1-3. Physics, residual maps, prior and fingerprints (`training.radio_map_build`).
4. Choice and calibration: L, the fingerprint bandwidth and background, the fingerprint
   weight, the temperature and the fingerprint point mass minimise the geometric mean of
   the median errors under random and under spatial-block cross-fitting of the labelled
   samples (`combined_median_m`; so the choice serves both
   the interpolation users do on a campaign's paths and the extrapolation to places nobody
   measured); then the covariance temperature, floor and scale bring the 1- and 2-sigma
   coverage of the same out-of-fold predictions to 0.393 / 0.865. When every sample has a
   timestamp, forward time blocks (each predicted from the earlier ones only) join the
   calibration, so the ellipses also answer for transmissions later than the training ones;
   and the covariance widens with the time since the nearest training transmission
   (`calibrate_time_widening`: a query amid the campaign keeps the calibrated ellipse, a
   later one gets the widening the held-out gaps called for).
5. Smoothing along tracks, where every sample has a timestamp: kept only if smoothing each
   fold's held-out transmissions as one batch lowers the combined out-of-fold median, then
   its ellipses calibrated on the same batches (`training.track_calibration`).

All distances in metres, powers in dB.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from heimdall.data.layout import SampleArrays
from heimdall.errors import DataError
from heimdall.evaluation.calibration import ellipse95_sigmas, seconds_to_nearest, tail_ratio, time_widening_factor
from heimdall.memory import reuse_freed_memory
from heimdall.models.radio_map import RadioMapNet
from heimdall.models.track_grids import ScoreGrid
from heimdall.models.tracks import TrackModel
from heimdall.training.cross_fitting import CROSS_FOLDS, combined_median_m, cross_fitting_folds, cross_fitting_schemes
from heimdall.training.radio_map_build import (
    RadioMapHyperparameters,
    apply_hyperparameters,
    build_radio_map,
    fill_absent_stations,
    map_grid,
    mobile_stations,
    refit_radio_map,
    station_positions,
    with_score_grid,
)
from heimdall.training.radio_map_calibration import calibrate_ellipses, calibrate_time_widening
from heimdall.training.radio_map_heldout import (
    FINGERPRINT_BACKGROUNDS,
    FINGERPRINT_BANDWIDTHS_DB,
    FINGERPRINT_POINT_MASSES,
    FINGERPRINT_WEIGHTS,
    TEMPERATURES,
    HeldOut,
    grid_log_score,
    held_out_terms,
    posterior_answer,
    second_pass_terms,
)
from heimdall.training.radio_map_readings import choose_readings
from heimdall.training.session_offsets import fit_session_offsets, session_starts
from heimdall.training.track_calibration import HeldOutBatch, calibrate_tracks

__all__ = [
    "RadioMapHyperparameters", "RadioMapFit", "fit_radio_map", "build_radio_map", "refit_radio_map",
    "apply_hyperparameters", "cross_fitting_schemes",
]

log = logging.getLogger(__name__)

#: Kernel length scales of the residual maps tried, as shares of the transmitters' extent.
LENGTH_SCALE_SHARES = (1 / 120, 1 / 60, 1 / 30)
#: Rounds of coordinate descent over the settings above.
SEARCH_ROUNDS = 2
#: Held-out samples scored per scheme at most.
CROSS_SAMPLES = 1500
#: Where the coordinate descent starts: (length index: the middle one, fingerprint
#: (bandwidth dB, background), fingerprint weight, temperature, fingerprint point mass: none).
_START = (len(LENGTH_SCALE_SHARES) // 2, (2.0, 1.0e-2), 1.0, 0.5, 0.0)


@dataclass(frozen=True)
class RadioMapFit:
    """A fitted model and what its fit measured on out-of-fold predictions."""

    net: RadioMapNet
    hyperparameters: RadioMapHyperparameters
    #: Out-of-fold figures per cross-fitting scheme: `cv_<scheme>_median_error_m` (m) of the
    #: schemes the settings were chosen on, `cv_<scheme>_coverage_1sigma`/`_2sigma` after
    #: calibration (fractions) of every scheme, "time" included when it ran, and
    #: `cv_<scheme>_tail_ratio` (`evaluation.calibration.tail_ratio`).
    cross_validation: dict[str, float]


def fit_radio_map(
    samples: SampleArrays,
    num_stations: int,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> RadioMapFit:
    """Choose hyperparameters by cross-fitting `samples`, calibrate, refit on all of them.

    `samples`: every labelled sample the model may learn from (positions known).
    `progress(done, total)` is called after each fold's map. Where the timestamps span
    several sessions (days), a second map is fitted with each receiver's offset per session
    taken out of the readings and kept if its cross-fitted medians are better.
    """
    # Without reuse of freed blocks, page faults cost more than the arithmetic (`heimdall.memory`).
    with reuse_freed_memory():
        sessions = None if samples.timestamp_s is None else session_starts(samples.timestamp_s)
        if sessions is None or len(sessions) < 2:
            return _fit_radio_map(samples, num_stations, seed, progress)
        # Several sessions (days): the map with one offset per receiver and session is fitted
        # too, and kept where its cross-fitting medians are better (`training.session_offsets`).
        halves = [None if progress is None else (lambda d, t, h=h: progress(h * t + d, 2 * t)) for h in (0, 1)]
        plain = _fit_radio_map(samples, num_stations, seed, halves[0])
        shifted, hyper = fit_session_offsets(samples, num_stations, plain.hyperparameters)
        per_session = _fit_radio_map(shifted, num_stations, seed, halves[1])
        scores = [combined_median_m([v for k, v in f.cross_validation.items() if k.endswith("_median_error_m")])
                  for f in (plain, per_session)]
        log.info("radio map: one offset per receiver %.1f m, per session %.1f m (cross-fitted)", *scores)
        if scores[1] >= scores[0]:
            return plain
        keep = {k: getattr(hyper, k) for k in ("session_starts_s", "session_offsets_db")}
        return RadioMapFit(per_session.net, replace(per_session.hyperparameters, **keep),
                           dict(per_session.cross_validation, session_count=float(len(sessions))))


def _fit_radio_map(
    samples: SampleArrays, num_stations: int, seed: int, progress: Callable[[int, int], None] | None,
) -> RadioMapFit:
    known = np.all(np.isfinite(samples.tx_position_m), axis=1)
    samples = samples.select(known)
    if len(samples) < 30:
        raise DataError(f"a radio map needs at least 30 labelled samples, got {len(samples)}")
    rng = np.random.default_rng(seed)
    tx = samples.tx_position_m.astype(np.float64)
    extent = max(float(np.max(tx.max(axis=0) - tx.min(axis=0))), 1.0)
    lengths = [share * extent for share in LENGTH_SCALE_SHARES]
    mobile = mobile_stations(samples, num_stations)
    # Files that list only the receivers that heard: a fixed station missing from a sample
    # heard nothing. Measured, not assumed: elsewhere a missing row is a dropped reading.
    filled = fill_absent_stations(samples, *station_positions(samples, num_stations, mobile))
    # The censored exponent is fitted once on every labelled sample and held in each fold's
    # map: one number, and its fit takes seconds where a map's takes a fraction of one.
    samples, fill, exponent, silence = choose_readings(samples, filled, num_stations, lengths[_START[0]], mobile,
                                                       seed)
    schemes = cross_fitting_schemes(samples)
    # Settings are chosen on random and spatial folds only; time blocks join the calibration,
    # so they are fitted for the chosen length scale only. Choosing on time blocks too cost
    # 10 +- 7 m of median on random April folds and won nothing across time (5 folds,
    # benchmarks/real_data.py).
    choosing = tuple(s for s in schemes if s != "time")
    total = (len(choosing) * len(lengths) + (len(schemes) - len(choosing))) * CROSS_FOLDS
    done = 0
    # held[scheme][length index] -> list of per-fold held-out terms
    held: dict[str, list[list[HeldOut]]] = {s: [[] for _ in lengths] for s in schemes}
    # gaps[scheme][length index] -> per fold, each held-out sample's seconds to the nearest
    # transmission its fold's maps were fitted on (NaN without timestamps).
    gaps: dict[str, list[list[np.ndarray]]] = {s: [[] for _ in lengths] for s in schemes}
    # nets[scheme][length index] -> per fold, its map; tests[scheme] -> per fold, the held-out
    # samples' indices (for the second pass the calibration is fitted on).
    nets: dict[str, list[list[RadioMapNet]]] = {s: [[] for _ in lengths] for s in schemes}
    tests: dict[str, list[np.ndarray]] = {s: [] for s in schemes}
    times = samples.timestamp_s if samples.timestamp_s is not None else np.full(len(samples), np.nan)

    def cross_fit(scheme: str, length_indices: list[int]) -> None:
        """Fit each fold's maps (one per length scale) and keep the held-out terms."""
        nonlocal done
        folds = cross_fitting_folds(samples, scheme, rng)
        chosen = rng.permutation(len(samples))[: min(CROSS_SAMPLES, len(samples))]
        for fold in range(CROSS_FOLDS):
            # Time blocks are forward: a block is predicted from earlier ones only, as a
            # deployed model predicts transmissions later than everything it was fitted on.
            in_train = folds < fold if scheme == "time" else folds != fold
            train = samples.select(in_train)
            test_index = np.intersect1d(np.nonzero(folds == fold)[0], chosen)
            if len(train) < 10 or len(test_index) == 0:
                done += len(length_indices)
                continue
            grid = map_grid(train.tx_position_m.astype(np.float64))
            gap = seconds_to_nearest(times[test_index], times[in_train])
            tests[scheme].append(test_index)
            shared = None
            for li in length_indices:
                net = build_radio_map(train, num_stations, lengths[li], grid=grid, mobile=mobile, fill_absent=fill,
                                      path_loss_exponent=exponent, silence_weight=silence)
                terms = held_out_terms(net, samples.select(test_index), shared)
                shared = terms
                held[scheme][li].append(terms)
                nets[scheme][li].append(net)
                gaps[scheme][li].append(gap)
                done += 1
                if progress is not None:
                    progress(done, total + 1)

    for scheme in choosing:
        cross_fit(scheme, list(range(len(lengths))))
    keys = list(itertools.product(FINGERPRINT_BANDWIDTHS_DB, FINGERPRINT_BACKGROUNDS))
    scores: dict[tuple, tuple[float, list[float]]] = {}

    def score(choice: tuple) -> float:
        """Combined out-of-fold median error (m, `combined_median_m`) for (length index, key,
        weight, T, point mass)."""
        if choice not in scores:
            li, key, weight, temperature, point_mass = choice
            medians = []
            for scheme in choosing:
                errors = [np.linalg.norm(posterior_answer(h, key, weight, temperature, point_mass) - h.truth_m, axis=1)
                          for h in held[scheme][li]]
                if errors:
                    medians.append(float(np.median(np.concatenate(errors))))
            scores[choice] = (combined_median_m(medians), medians)
        return scores[choice][0]

    # Coordinate descent over the five settings (a full product is 30x the softmaxes for the
    # same choice on the data tried, without the point masses): each in turn takes its best
    # value, the others held.
    options = (range(len(lengths)), keys, FINGERPRINT_WEIGHTS, TEMPERATURES, FINGERPRINT_POINT_MASSES)
    choice = _START
    for _ in range(SEARCH_ROUNDS):
        for axis, values in enumerate(options):
            choice = min((choice[:axis] + (v,) + choice[axis + 1 :] for v in values), key=score)
    li, key, weight, temperature, point_mass = choice
    medians = scores[choice][1]
    if "time" in schemes:
        cross_fit("time", [li])
    # Covariance temperature, novelty widening, floor and scale on the same out-of-fold
    # transmissions, answered as the runtime answers them: each held-out fold a batch whose
    # receivers' drift is re-estimated and taken out before a second pass. Fitted on the
    # first pass, the ellipses came out narrower than calibrated across time and space.
    settings = RadioMapHyperparameters(lengths[li], key[0], key[1], weight, temperature,
                                       fingerprint_point_mass=point_mass, silence_weight=silence)
    held.clear()  # the first pass's terms are done with: the second pass's take their memory
    held_best = [
        (si, second_pass_terms(apply_hyperparameters(net, settings), samples.select(test_index), key))
        for si, s in enumerate(schemes) for net, test_index in zip(nets[s][li], tests[s], strict=True)
    ]
    held_index = [test_index for s in schemes for test_index in tests[s]]
    nets.clear()
    calibration = calibrate_ellipses([h for _, h in held_best], [si for si, _ in held_best], key, weight,
                                     temperature, float(map_grid(tx)[1]), point_mass)
    groups = np.concatenate([np.full(len(h.truth_m), si) for si, h in held_best])
    # Then the widening with the time since the nearest training transmission, on top.
    held_gap_s = np.concatenate([g for s in schemes for g in gaps[s][li]])
    time_widening, time_scale_s = calibrate_time_widening(calibration.mahalanobis_sq, held_gap_s, groups)
    radius_sq = calibration.mahalanobis_sq / time_widening_factor(held_gap_s, time_widening, time_scale_s)
    # The 95% ellipse is sized on the same held-out truths, to hold in every scheme: heavy tails
    # make it more than a Gaussian's 2.45 sigma (April folds: 3.4 to 9.4), which one scale of
    # the 1-/2-sigma ellipse cannot say.
    region_sigmas = ellipse95_sigmas(radius_sq, groups)
    tracks = None
    if "time" in schemes:
        # Step 5: every sample has a timestamp; smoothing along tracks, if it pays (`training.track_calibration`).
        widening = time_widening_factor(held_gap_s, time_widening, time_scale_s)
        covariance = calibration.covariance_m2 * widening[:, None, None]
        bounds = np.cumsum([0] + [len(h.truth_m) for _, h in held_best])
        batches = [
            HeldOutBatch(schemes[si], h.truth_m - calibration.delta_m[a:b], covariance[a:b], times[index], h.truth_m,
                         held_gap_s[a:b], grid_log_score(h, key, weight, temperature),
                         ScoreGrid.from_points(h.grid_m.double().numpy()), widening[a:b])
            for (si, h), index, a, b in zip(held_best, held_index, bounds[:-1], bounds[1:], strict=True)
        ]
        tracks = calibrate_tracks(TrackModel.for_training(times, tx), batches)
        if tracks.model is not None:
            # The 95% ellipse holds for the smoothed answers too (one k for both).
            track_groups = len(schemes) + np.asarray([schemes.index(s) for s in tracks.schemes])
            region_sigmas = ellipse95_sigmas(np.concatenate([radius_sq, tracks.mahalanobis_sq]),
                                             np.concatenate([groups, track_groups]))
    hyper = RadioMapHyperparameters(
        length_scale_m=lengths[li],
        fingerprint_bandwidth_db=key[0],
        fingerprint_background=key[1],
        fingerprint_weight=weight,
        fingerprint_point_mass=point_mass,
        temperature=temperature,
        covariance_temperature=calibration.covariance_temperature,
        covariance_floor_m=calibration.floor_m,
        covariance_scale=calibration.scale,
        novelty_db=calibration.novelty_db,
        fill_absent=fill,
        path_loss_exponent=exponent,
        silence_weight=silence,
        time_widening=time_widening,
        time_scale_s=time_scale_s,
        ellipse95_sigmas=region_sigmas,
        track={} if tracks is None or tracks.model is None else tracks.model.to_dict(),
    )
    net = build_radio_map(samples, num_stations, hyper.length_scale_m, mobile=mobile, fill_absent=fill,
                          path_loss_exponent=exponent, silence_weight=silence)
    # The runtime smooths on the final map's scores: its grid, not the folds'.
    hyper = with_score_grid(hyper, net)
    net = apply_hyperparameters(net, hyper)
    if progress is not None:
        progress(total + 1, total + 1)
    report = {f"cv_{s}_median_error_m": m for s, m in zip(choosing, medians, strict=False)}
    for si, scheme in enumerate(schemes):
        part = radius_sq[groups == si]
        if len(part):
            report[f"cv_{scheme}_coverage_1sigma"] = float(np.mean(part <= 1.0))
            report[f"cv_{scheme}_coverage_2sigma"] = float(np.mean(part <= 4.0))
            report[f"cv_{scheme}_coverage_95"] = float(np.mean(part <= region_sigmas**2))
            if np.isfinite(part).sum() >= 10:
                report[f"cv_{scheme}_tail_ratio"] = tail_ratio(part)
    for scheme, (_, smoothed_m) in ({} if tracks is None else tracks.medians_m).items():
        report[f"cv_{scheme}_smoothed_median_m"] = smoothed_m
        part = tracks.mahalanobis_sq[tracks.schemes == scheme] if tracks.model is not None else np.zeros(0)
        if len(part):
            report[f"cv_{scheme}_smoothed_within_1sigma"] = float(np.mean(part <= 1.0))
            report[f"cv_{scheme}_smoothed_within_2sigma"] = float(np.mean(part <= 4.0))
    log.info("radio map: %s; out-of-fold medians and calibrated coverage %s", hyper, report)
    return RadioMapFit(net=net, hyperparameters=hyper, cross_validation=report)
