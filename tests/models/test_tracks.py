"""Smoothing timestamped answers along tracks (`models.tracks`) and the fit's decision on it
(`training.track_calibration`)."""

from __future__ import annotations

import numpy as np

from heimdall.models.tracks import MotionModel, TrackModel, crowding, disagreement, fit_motion, smooth_tracks
from heimdall.training.track_calibration import HeldOutBatch, calibrate_tracks

STEP_S = 4.0


def _drive(n: int, speed_mps: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n transmissions STEP_S apart from a transmitter at `speed_mps`, turning now and then."""
    heading = np.cumsum(rng.normal(0.0, 0.3, n))
    step = speed_mps * STEP_S * np.stack([np.cos(heading), np.sin(heading)], axis=1)
    return np.arange(n) * STEP_S, np.cumsum(step, axis=0)


def _answers(truth_m: np.ndarray, sigma_m: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Answers scattered about the truth as their (round) covariance says."""
    covariance = np.broadcast_to(sigma_m**2 * np.eye(2), (len(truth_m), 2, 2)).copy()
    return truth_m + rng.normal(0.0, sigma_m, truth_m.shape), covariance


def test_the_fitted_speed_follows_how_fast_the_transmitter_moved() -> None:
    rng = np.random.default_rng(0)
    walk = fit_motion(*_drive(300, 1.4, rng))
    drive = fit_motion(*_drive(300, 12.0, rng))
    assert walk is not None and drive is not None
    # A factor of 8.6 in speed; the grid of speeds is in factors of 2.
    assert 4.0 <= drive.speed_mps / walk.speed_mps <= 16.0
    # Consecutive transmissions of one transmitter: no jumps between them.
    assert float(drive.jump_probability(STEP_S)) < 0.05


def test_unrelated_consecutive_transmissions_fit_a_motion_that_jumps() -> None:
    rng = np.random.default_rng(1)
    times = np.arange(400) * STEP_S
    anywhere = rng.uniform(0.0, 3000.0, size=(400, 2))  # many devices, interleaved
    motion = fit_motion(times, anywhere)
    assert motion is not None
    assert float(motion.jump_probability(STEP_S)) > 0.5
    assert fit_motion(times[:5], anywhere[:5]) is None  # too few pairs to say


def test_a_standing_transmitter_is_located_better_from_its_repeated_answers() -> None:
    rng = np.random.default_rng(2)
    truth = np.tile([[500.0, 800.0]], (40, 1))
    answers, covariance = _answers(truth, 60.0, rng)
    model = TrackModel(MotionModel(0.5, 60.0, 1.0e9))
    position, smoothed_covariance, smoothed = smooth_tracks(answers, covariance, np.arange(40) * STEP_S, model)
    assert smoothed.all()
    raw_error = np.median(np.linalg.norm(answers - truth, axis=1))
    error = np.median(np.linalg.norm(position - truth, axis=1))
    # 40 answers of 60 m: their mean is within about 60 / sqrt(40) = 9.5 m per axis.
    assert error < 0.4 * raw_error
    # And the smoother says so: its sigma shrinks with the evidence.
    assert np.median(np.sqrt(smoothed_covariance[:, 0, 0])) < 0.5 * 60.0


def test_one_confidently_wrong_answer_in_a_track_is_outvoted() -> None:
    rng = np.random.default_rng(3)
    times, truth = _drive(30, 4.0, rng)
    answers, covariance = _answers(truth, 30.0, rng)
    answers[15] = truth[15] + [1500.0, 0.0]  # another place's readings, as sure of itself
    model = TrackModel(MotionModel(8.0, 60.0, 1.0e9))
    position, _, _ = smooth_tracks(answers, covariance, times, model)
    assert np.linalg.norm(position[15] - truth[15]) < 100.0


def test_answers_without_time_or_alone_in_their_segment_are_left_as_given() -> None:
    rng = np.random.default_rng(4)
    times, truth = _drive(12, 4.0, rng)
    answers, covariance = _answers(truth, 30.0, rng)
    model = TrackModel(MotionModel(8.0, 60.0, 300.0), covariance_scale=2.0)
    times = times.copy()
    times[3] = np.nan
    times[-1] = times[-2] + 10 * 86400.0  # ten days later: a segment of its own
    position, spread, smoothed = smooth_tracks(answers, covariance, times, model)
    assert not smoothed[3] and not smoothed[-1] and smoothed[:3].all()
    for i in (3, len(times) - 1):
        np.testing.assert_array_equal(position[i], answers[i])
        np.testing.assert_array_equal(spread[i], covariance[i])
    untimed = smooth_tracks(answers, covariance, np.full(len(times), np.nan), model)
    np.testing.assert_array_equal(untimed[0], answers)
    assert not untimed[2].any()


def test_a_gap_the_transmitter_may_have_jumped_does_not_pull_one_track_to_the_other() -> None:
    rng = np.random.default_rng(5)
    here = np.tile([[0.0, 0.0]], (20, 1))
    there = np.tile([[2000.0, 0.0]], (20, 1))
    answers, covariance = _answers(np.concatenate([here, there]), 50.0, rng)
    times = np.concatenate([np.arange(20) * STEP_S, 7200.0 + np.arange(20) * STEP_S])
    position, _, _ = smooth_tracks(answers, covariance, times, TrackModel(MotionModel(2.0, 60.0, 300.0)))
    assert np.abs(position[:20, 0]).max() < 100.0
    assert np.abs(position[20:, 0] - 2000.0).max() < 100.0


def test_the_fit_keeps_smoothing_only_where_it_pays_and_calibrates_its_ellipses() -> None:
    rng = np.random.default_rng(6)
    batches, shuffled = [], []
    for scheme in ("random", "spatial", "time"):
        times, truth = _drive(120, 4.0, rng)
        answers, covariance = _answers(truth, 80.0, rng)
        gap = np.full(len(times), STEP_S)
        batches.append(HeldOutBatch(scheme, answers, covariance, times, truth, gap))
        # The same answers from transmitters unrelated in time: nothing to gain.
        order = rng.permutation(len(times))
        shuffled.append(HeldOutBatch(scheme, answers[order], covariance[order], times, truth[order], gap))
    model = TrackModel(MotionModel(8.0, 60.0, 1.0e9))
    kept = calibrate_tracks(model, batches)
    assert kept.model is not None
    for raw_m, smoothed_m in kept.medians_m.values():
        assert smoothed_m < raw_m
    # Calibrated on these batches: 1- and 2-sigma coverage at their targets.
    assert abs(np.mean(kept.mahalanobis_sq <= 1.0) - 0.393) < 0.06
    assert abs(np.mean(kept.mahalanobis_sq <= 4.0) - 0.865) < 0.06
    assert calibrate_tracks(model, shuffled).model is None
    assert calibrate_tracks(None, batches).model is None


def test_a_track_model_round_trips_through_a_bundle_config() -> None:
    model = TrackModel(MotionModel(8.0, 30.0, 600.0), outlier_share=0.1, covariance_scale=1.7, correlation_s=16.0,
                       time_widening=2.0, time_scale_s=300.0, disagreement_window_s=60.0)
    assert TrackModel.from_dict(model.to_dict()) == model
    # A bundle stored before the widening by disagreement reads back without it.
    older = {k: v for k, v in model.to_dict().items() if k != "disagreement_window_s"}
    assert TrackModel.from_dict(older).disagreement_window_s == 0.0
    assert TrackModel.from_dict({}) is None and TrackModel.from_dict(None) is None


def test_crowding_counts_the_answers_that_share_an_error() -> None:
    rng = np.random.default_rng(7)
    times = np.sort(rng.uniform(0.0, 600.0, 50))
    brute = np.exp(-np.abs(times[:, None] - times[None, :]) / 16.0).sum(axis=1)
    np.testing.assert_allclose(crowding(times, 16.0), brute, rtol=1e-9)
    np.testing.assert_allclose(crowding(np.zeros(5), 16.0), 5.0)  # five at once: five of one
    np.testing.assert_allclose(crowding(np.arange(5) * 1.0e5, 16.0), 1.0)  # far apart: each its own
    np.testing.assert_array_equal(crowding(times, 0.0), np.ones(50))


def test_answers_sharing_one_error_keep_their_ellipse_wide_where_told_so() -> None:
    rng = np.random.default_rng(8)
    truth = np.tile([[500.0, 800.0]], (40, 1))
    answers, covariance = _answers(truth, 60.0, rng)
    answers = truth + [60.0, 0.0] + rng.normal(0.0, 5.0, truth.shape)  # one shared error: the same readings
    times = np.arange(40) * STEP_S
    motion = MotionModel(0.5, 60.0, 1.0e9)
    independent = smooth_tracks(answers, covariance, times, TrackModel(motion))
    shared = smooth_tracks(answers, covariance, times, TrackModel(motion, correlation_s=1.0e6))
    # The answer does not depend on how the ellipse counts the evidence ...
    np.testing.assert_array_equal(independent[0], shared[0])
    # ... the ellipse does: 40 independent answers of 60 m would pin it to about 10 m, while
    # answers that all share one error are worth one answer of 60 m.
    sigma_independent = np.sqrt(independent[1][:, 0, 0])
    sigma_shared = np.sqrt(shared[1][:, 0, 0])
    assert np.median(sigma_independent) < 20.0
    assert 40.0 < np.median(sigma_shared) < 90.0
    # Widened where the runtime says so (later than training), on the smoothed answers only.
    widened = smooth_tracks(answers, covariance, times, TrackModel(motion), widening=np.full(40, 3.0))
    np.testing.assert_allclose(widened[1], 3.0 * independent[1])


def test_the_fit_widens_the_smoothed_ellipses_of_answers_later_than_training() -> None:
    rng = np.random.default_rng(9)
    batches = []
    for scheme, gap_s, sigma_m in (("random", 4.0, 60.0), ("spatial", 4.0, 60.0), ("time", 3600.0, 250.0)):
        times, truth = _drive(120, 4.0, rng)
        answers, covariance = _answers(truth, sigma_m, rng)
        # Every answer claims 60 m: the later ones miss by four times more.
        covariance = np.broadcast_to(60.0**2 * np.eye(2), covariance.shape).copy()
        batches.append(HeldOutBatch(scheme, answers, covariance, times, truth, np.full(len(times), gap_s)))
    kept = calibrate_tracks(TrackModel(MotionModel(8.0, 60.0, 1.0e9)), batches)
    assert kept.model is not None and kept.model.time_widening > 0
    for scheme in ("random", "time"):
        part = kept.mahalanobis_sq[kept.schemes == scheme]
        assert abs(np.mean(part <= 1.0) - 0.393) < 0.1 and abs(np.mean(part <= 4.0) - 0.865) < 0.1


def test_disagreement_averages_the_answers_strays_from_the_track_over_the_window() -> None:
    rng = np.random.default_rng(10)
    times = np.sort(rng.uniform(0.0, 900.0, 60))
    track = rng.normal(0.0, 100.0, (60, 2))
    sigma_m = rng.uniform(20.0, 80.0, 60)
    covariance = sigma_m[:, None, None] ** 2 * np.eye(2)
    answers = track + rng.normal(0.0, 1.0, (60, 2)) * sigma_m[:, None] * 3.0
    stray_sq = np.sum((answers - track) ** 2, axis=1) / sigma_m**2
    weight = np.exp(-np.abs(times[:, None] - times[None, :]) / 60.0)
    np.testing.assert_allclose(disagreement(answers, covariance, track, times, 60.0),
                               1.0 + weight @ stray_sq / weight.sum(axis=1), rtol=1e-9)
    # Answers three sigmas off their track on average: E[stray^2] = 2 x 9 = 18.
    assert 10.0 < np.median(disagreement(answers, covariance, track, times, 60.0)) < 30.0
    np.testing.assert_array_equal(disagreement(answers, covariance, track, times, 0.0), np.ones(60))


def test_a_stretch_whose_answers_scatter_more_than_they_claim_gets_wider_ellipses() -> None:
    rng = np.random.default_rng(11)
    times, truth = _drive(120, 2.0, rng)
    answers, covariance = _answers(truth, 40.0, rng)
    # The second half: the map confuses places there, its answers miss by 4x what they claim.
    answers[60:] = truth[60:] + rng.normal(0.0, 160.0, (60, 2))
    motion = MotionModel(4.0, 60.0, 1.0e9)
    plain = smooth_tracks(answers, covariance, times, TrackModel(motion))
    widened = smooth_tracks(answers, covariance, times, TrackModel(motion, disagreement_window_s=60.0))
    np.testing.assert_array_equal(plain[0], widened[0])  # the answers do not move
    ratio = widened[1][:, 0, 0] / plain[1][:, 0, 0]
    # Away from the boundary (several windows from it), each stretch is widened by 1 + its
    # mean stray: about 1 + 2 where the ellipses were right, about 1 + 2 x 16 where they were not.
    assert np.median(ratio[:40]) < 6.0
    assert np.median(ratio[80:]) > 3.0 * np.median(ratio[:40])
    # So the confused stretch's truths fall inside its 1-sigma ellipses about as often as the
    # other's (1.0 / 0.725 here, unscaled), where without the widening they did not (0.825 / 0.3).
    def inside_1sigma(answer: tuple[np.ndarray, ...], part: slice) -> float:
        delta = truth[part] - answer[0][part]
        return float(np.mean(np.einsum("ni,nij,nj->n", delta, np.linalg.inv(answer[1][part]), delta) <= 1.0))

    assert inside_1sigma(plain, slice(0, 40)) - inside_1sigma(plain, slice(80, 120)) > 0.4
    assert inside_1sigma(widened, slice(0, 40)) - inside_1sigma(widened, slice(80, 120)) < 0.3
