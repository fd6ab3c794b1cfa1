"""Time-ordered cross-fitting: a radio map fitted on timestamped measurements also calibrates
its ellipses on forward time blocks (each predicted from the earlier ones only)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from heimdall.data.layout import SampleArrays
from heimdall.data.measurement_files import read_measurements, write_measurements
from heimdall.errors import InputError
from heimdall.export.bundle import model_card, write_bundle_files
from heimdall.export.localizer import Localizer
from heimdall.export.onnx_export import export_onnx
from heimdall.models.tracks import MotionModel, TrackModel
from heimdall.training.radio_map_build import build_radio_map
from heimdall.training.cross_fitting import CROSS_FOLDS, cross_fitting_folds, cross_fitting_schemes
from heimdall.training.radio_map_fit import fit_radio_map
from tests.training.test_radio_map import EXTENT_M, STATIONS, _predict, _samples

HOUR_S = 3600.0


def _timestamped(samples: SampleArrays, hours: np.ndarray) -> SampleArrays:
    return replace(samples, timestamp_s=1.65e9 + hours * HOUR_S)


def test_time_blocks_are_contiguous_and_keep_ties_together() -> None:
    rng = np.random.default_rng(3)
    samples = _samples(rng.uniform(0.0, EXTENT_M, size=(120, 2)), rng)
    hours = np.repeat(rng.permutation(60).astype(float), 2)  # every timestamp twice, shuffled
    folds = cross_fitting_folds(_timestamped(samples, hours), "time", rng)
    assert set(np.unique(folds)) == set(range(CROSS_FOLDS))
    for fold in range(CROSS_FOLDS - 1):
        assert hours[folds == fold].max() < hours[folds == fold + 1].min()
    for hour in np.unique(hours):
        assert len(np.unique(folds[hours == hour])) == 1


def test_time_scheme_only_with_a_timestamp_for_every_sample() -> None:
    rng = np.random.default_rng(4)
    samples = _samples(rng.uniform(0.0, EXTENT_M, size=(100, 2)), rng)
    assert cross_fitting_schemes(samples) == ("random", "spatial")
    hours = np.linspace(0.0, 5.0, 100)
    assert cross_fitting_schemes(_timestamped(samples, hours)) == ("random", "spatial", "time")
    hours[7] = np.nan  # one unknown time: no time order to hold out by
    assert cross_fitting_schemes(_timestamped(samples, hours)) == ("random", "spatial")
    # A handful of distinct times (one burst per hour) is not a time series.
    assert cross_fitting_schemes(_timestamped(samples, np.floor(np.linspace(0, 4.9, 100)))) == ("random", "spatial")


def test_timestamps_must_be_one_per_sample() -> None:
    rng = np.random.default_rng(5)
    samples = _samples(rng.uniform(0.0, EXTENT_M, size=(10, 2)), rng)
    with pytest.raises(InputError, match="timestamp_s"):
        replace(samples, timestamp_s=np.zeros(9))


def _walk(n: int, rng: np.random.Generator) -> SampleArrays:
    """n transmissions over 10 hours from a transmitter sweeping the area west to east, so a
    later stretch of the campaign is also a place the earlier ones never visited."""
    hours = np.sort(rng.uniform(0.0, 10.0, size=n))
    tx = np.stack([hours / 10.0 * EXTENT_M + rng.normal(0.0, 60.0, n), rng.uniform(0.0, EXTENT_M, n)], axis=1)
    return _timestamped(_samples(tx, rng), hours)


@pytest.mark.slow
def test_timestamps_calibrate_the_ellipses_and_never_move_the_answer() -> None:
    samples = _walk(500, np.random.default_rng(11))
    timed = fit_radio_map(samples, STATIONS, seed=0)
    untimed = fit_radio_map(replace(samples, timestamp_s=None), STATIONS, seed=0)
    # The settings that place the answer are chosen on random and spatial folds either way.
    for name in ("length_scale_m", "fingerprint_bandwidth_db", "fingerprint_background", "fingerprint_weight",
                 "temperature"):
        assert getattr(timed.hyperparameters, name) == getattr(untimed.hyperparameters, name)
    later = _walk(120, np.random.default_rng(12))
    position_timed, covariance_timed = _predict(timed.net, later)
    position_untimed, _ = _predict(untimed.net, later)
    np.testing.assert_array_equal(position_timed, position_untimed)
    assert np.all(np.isfinite(covariance_timed))
    # The forward time blocks were scored and calibrated against, and say how they held.
    assert "cv_time_median_error_m" not in timed.cross_validation
    for report, schemes in ((timed.cross_validation, ("random", "spatial", "time")),
                            (untimed.cross_validation, ("random", "spatial"))):
        assert {k.rsplit("_coverage", 1)[0] for k in report if "_coverage_" in k} == {f"cv_{s}" for s in schemes}
        for scheme in schemes:
            one, two = report[f"cv_{scheme}_coverage_1sigma"], report[f"cv_{scheme}_coverage_2sigma"]
            assert 0.0 < one < two < 1.0
            assert report[f"cv_{scheme}_coverage_95"] >= two
        # The 95% ellipse held 95% of the held-out truths in every scheme.
        assert min(report[f"cv_{s}_coverage_95"] for s in schemes) >= 0.95
    assert timed.hyperparameters.ellipse95_sigmas >= 2.0


def test_the_runtime_widens_the_ellipses_of_transmissions_later_than_training(tmp_path) -> None:  # noqa: ANN001
    rng = np.random.default_rng(13)
    train = _timestamped(_samples(rng.uniform(0.0, EXTENT_M, size=(300, 2)), rng), np.linspace(0.0, 2.0, 300))
    export_onnx(build_radio_map(train, STATIONS, EXTENT_M / 60.0), tmp_path / "model.onnx")
    config = {
        "name": "test", "version": 1, "reference_point": {"lat_deg": 45.0, "lon_deg": 9.0, "alt_m": 0.0},
        "station_ids": [f"s{i}" for i in range(STATIONS)], "max_batch": 16,
        "hyperparameters": {"time_widening": 2.0, "time_scale_s": 60.0},
        "training_times_s": [int(t) for t in train.timestamp_s],
    }
    write_bundle_files(tmp_path, config, {}, "test bundle")
    localizer = Localizer(tmp_path)
    queries = _samples(rng.uniform(100.0, EXTENT_M - 100.0, size=(40, 2)), rng)
    plain = localizer.predict(queries)  # no timestamps: the graph's ellipses
    stored = np.asarray(config["training_times_s"], dtype=np.float64)
    amid = localizer.predict(replace(queries, timestamp_s=stored[:40]))
    month = localizer.predict(replace(queries, timestamp_s=stored[:40] + 30 * 86400.0))
    np.testing.assert_allclose(amid.covariance_m2, plain.covariance_m2)
    # A month later: variance x (1 + a), the answer unchanged.
    np.testing.assert_allclose(month.covariance_m2, 3.0 * plain.covariance_m2, rtol=1e-9)
    np.testing.assert_array_equal(month.position_m, plain.position_m)
    # The same from a measurement file with a timestamp column, as `heimdall localize` reads it.
    later = replace(queries, timestamp_s=stored[:40] + 30 * 86400.0)
    write_measurements(tmp_path / "later.csv", later, localizer.reference_point, localizer.station_ids)
    write_measurements(tmp_path / "untimed.csv", queries, localizer.reference_point, localizer.station_ids)
    _, from_file = localizer.localize_table(read_measurements(tmp_path / "later.csv"))
    _, untimed = localizer.localize_table(read_measurements(tmp_path / "untimed.csv"))
    np.testing.assert_allclose(from_file.covariance_m2, 3.0 * untimed.covariance_m2, rtol=1e-9)
    # The model card says so.
    card = model_card({**config, "network": {"name": "n", "frequency_hz": 462.7e6}, "dataset_kind": "measured"}, {})
    assert "widen with the time since the nearest training one: variance x (1 + 2 (1 - exp(-gap / 60 s)))" in card
    # No 95% ellipse measured in this bundle: a calibrated Gaussian's, 2.448 sigma, widened alike.
    np.testing.assert_allclose(month.ellipse95_major_m, 2.4477 * month.sigma_major_m, rtol=1e-4)
    np.testing.assert_allclose(month.ellipse95_minor_m, 2.4477 * month.sigma_minor_m, rtol=1e-4)


def test_the_runtime_smooths_timestamped_transmissions_along_their_track(tmp_path) -> None:  # noqa: ANN001
    rng = np.random.default_rng(14)
    train = _samples(rng.uniform(0.0, EXTENT_M, size=(300, 2)), rng, noise_db=6.0)
    export_onnx(build_radio_map(train, STATIONS, EXTENT_M / 60.0), tmp_path / "model.onnx")
    track = TrackModel(MotionModel(speed_mps=4.0, ballistic_s=60.0, jump_s=3600.0), disagreement_window_s=60.0)
    config = {
        "name": "test", "version": 1, "reference_point": {"lat_deg": 45.0, "lon_deg": 9.0, "alt_m": 0.0},
        "station_ids": [f"s{i}" for i in range(STATIONS)], "max_batch": 16,
        "hyperparameters": {"track": track.to_dict()},
    }
    write_bundle_files(tmp_path, config, {}, "test bundle")
    localizer = Localizer(tmp_path)
    # A walk at 1.5 m/s, a transmission every 4 s, heard through 6 dB of shadowing.
    steps = np.cumsum(np.tile([[6.0, 0.0]], (60, 1)), axis=0)
    truth = np.array([500.0, 900.0]) + steps
    queries = _samples(truth, rng, noise_db=6.0)
    one_by_one = localizer.predict(queries)
    walked = localizer.predict(replace(queries, timestamp_s=1.65e9 + 4.0 * np.arange(60)))
    error_one = np.median(np.linalg.norm(one_by_one.position_m - truth, axis=1))
    error_walked = np.median(np.linalg.norm(walked.position_m - truth, axis=1))
    assert error_walked < 0.7 * error_one
    # Asked to, it answers each alone (a file mixing several moving transmitters).
    alone = localizer.predict(replace(queries, timestamp_s=1.65e9 + 4.0 * np.arange(60)), tracks=False)
    np.testing.assert_array_equal(alone.position_m, one_by_one.position_m)
    # Without timestamps nothing is smoothed: the same answers as a bundle without a smoother.
    del config["hyperparameters"]["track"]
    write_bundle_files(tmp_path, config, {}, "test bundle")
    np.testing.assert_array_equal(Localizer(tmp_path).predict(queries).position_m, one_by_one.position_m)
    card = model_card({**config, "hyperparameters": {"track": track.to_dict()}, "network": {"name": "n",
                       "frequency_hz": 462.7e6}, "dataset_kind": "measured"}, {})
    assert "smoothed along their track (a transmitter moving at up to about 4 m/s" in card
    assert "stray from the track more than their own ellipses allow (averaged over 60 s)" in card


def test_the_runtime_smooths_on_the_maps_scores_from_the_graph(tmp_path, caplog) -> None:  # noqa: ANN001
    import torch

    from heimdall.models.drift import corrected_rss
    from heimdall.models.track_grids import ScoreGrid
    from heimdall.models.tracks import smooth_tracks

    rng = np.random.default_rng(15)
    train = _samples(rng.uniform(0.0, EXTENT_M, size=(300, 2)), rng, noise_db=6.0)
    net = build_radio_map(train, STATIONS, EXTENT_M / 60.0)
    export_onnx(net, tmp_path / "model.onnx")
    grid = ScoreGrid.from_axes(net.grid_east_m.numpy(), net.grid_north_m.numpy(), float(net.grid_step_m))
    track = TrackModel(MotionModel(speed_mps=4.0, ballistic_s=60.0, jump_s=3600.0), score_temperature=1.0,
                       score_grid=grid)
    config = {
        "name": "test", "version": 1, "reference_point": {"lat_deg": 45.0, "lon_deg": 9.0, "alt_m": 0.0},
        "station_ids": [f"s{i}" for i in range(STATIONS)], "max_batch": 16,
        "hyperparameters": {"track": track.to_dict()},
    }
    write_bundle_files(tmp_path, config, {}, "test bundle")
    steps = np.cumsum(np.tile([[6.0, 0.0]], (60, 1)), axis=0)
    truth = np.array([500.0, 900.0]) + steps
    queries = replace(_samples(truth, rng, noise_db=6.0), timestamp_s=1.65e9 + 4.0 * np.arange(60))
    localizer = Localizer(tmp_path)
    walked = localizer.predict(queries, check_area=False)
    one_by_one = localizer.predict(queries, check_area=False, tracks=False)

    # The same from the PyTorch map: two passes, then the smoother on its grid scores.
    def run(rss: np.ndarray) -> tuple[np.ndarray, ...]:
        with torch.no_grad():
            out = net(torch.from_numpy(queries.rx_position_m.astype(np.float32)), torch.from_numpy(queries.rx_id),
                      torch.from_numpy(rss.astype(np.float32)), torch.from_numpy(queries.heard),
                      torch.from_numpy(queries.present))
        return tuple(o.double().numpy() for o in out)

    rss = np.where(queries.heard, queries.rss_dbm, 0.0)
    residual = run(rss)[2]
    position, covariance, _, log_score = run(corrected_rss(queries.rx_id, queries.heard, rss, residual, STATIONS))
    expected, _, _ = smooth_tracks(position, covariance, queries.timestamp_s, track, None, log_score)
    np.testing.assert_allclose(walked.position_m, expected, atol=0.5)
    # One pass (no drift correction): the smoother on that pass's scores.
    position, covariance, _, log_score = run(rss)
    expected_one_pass, _, _ = smooth_tracks(position, covariance, queries.timestamp_s, track, None, log_score)
    one_pass = localizer.predict(queries, check_area=False, drift_correction=False)
    np.testing.assert_allclose(one_pass.position_m, expected_one_pass, atol=0.5)
    # Two passes ask the graph for the scores (N x grid points) once, in the pass that counts.
    asked: list[list[str]] = []

    class Spy:
        def __init__(self, session: object) -> None:
            self.session = session

        def run(self, names: list[str], feeds: dict) -> list:
            asked.append(list(names))
            return self.session.run(names, feeds)

    localizer.session = Spy(localizer.session)
    localizer.predict(queries, check_area=False)
    assert ["grid_log_score" in names for names in asked] == [False] * 4 + [True] * 4
    # Its scores at the map's temperature, with the prior, are the map's posterior over the grid.
    inputs = (torch.from_numpy(queries.rx_position_m.astype(np.float32)), torch.from_numpy(queries.rx_id),
              torch.from_numpy(rss.astype(np.float32)), torch.from_numpy(queries.heard),
              torch.from_numpy(queries.present))
    with torch.no_grad():
        log_likelihood, density, log_prior, _, _, _ = net.candidate_terms(*inputs)
        weights = net.posterior(log_likelihood, density, net.temperature, log_prior)[:, : len(net.grid_m)]
        from_scores = torch.softmax(net(*inputs)[3] / net.temperature + net.log_prior, dim=1)
    np.testing.assert_allclose(from_scores.numpy(), weights.numpy() / weights.sum(1, keepdim=True).numpy(),
                               atol=1e-5)
    error_one = np.median(np.linalg.norm(one_by_one.position_m - truth, axis=1))
    error_walked = np.median(np.linalg.norm(walked.position_m - truth, axis=1))
    # A walk heard through 6 dB of shadowing: its neighbours in time pull each answer towards the walk.
    assert error_walked < 0.8 * error_one
    card = model_card({**config, "network": {"name": "n", "frequency_hz": 462.7e6}, "dataset_kind": "measured"}, {})
    assert "weighs every place by the map's own likelihood of each transmission's readings" in card
    # A stored grid that is not the graph's (a bundle edited by hand): the answers' Gaussians, and a warning.
    config["hyperparameters"]["track"] = replace(track, score_grid=replace(grid, rows=grid.rows + 1)).to_dict()
    write_bundle_files(tmp_path, config, {}, "test bundle")
    mismatched = Localizer(tmp_path).predict(queries, check_area=False)
    config["hyperparameters"]["track"] = replace(track, score_temperature=0.0).to_dict()
    write_bundle_files(tmp_path, config, {}, "test bundle")
    on_gaussians = Localizer(tmp_path).predict(queries, check_area=False)
    np.testing.assert_array_equal(mismatched.position_m, on_gaussians.position_m)
    assert "do not match its stored grid" in caplog.text
