"""The radio-map localiser: what it recovers, how it fails, and that its ONNX graph matches."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from heimdall.data.layout import SampleArrays
from heimdall.evaluation.knn import choose_k, fit_knn
from heimdall.evaluation.metrics import mahalanobis_sq
from heimdall.export.bundle import write_bundle_files
from heimdall.export.localizer import Localizer
from heimdall.export.onnx_export import export_onnx
from heimdall.training.radio_map_build import (
    RadioMapHyperparameters,
    apply_hyperparameters,
    build_radio_map,
    fit_physics,
)
from heimdall.training.radio_map_fit import fit_radio_map
from heimdall.training.radio_map_calibration import floored_covariance, novelty_factor
from heimdall.training.radio_map_heldout import held_out_terms, posterior_answer, posterior_moments, second_pass_terms

STATIONS = 8
EXTENT_M = 2000.0
OFFSETS_DB = np.array([0.0, -6.0, 4.0, 9.0, -3.0, 2.0, -8.0, 5.0])
EXPONENT = 3.0


def _stations_m() -> np.ndarray:
    angle = np.linspace(0.0, 2 * np.pi, STATIONS, endpoint=False)
    return np.stack([1000 + 1100 * np.cos(angle), 1000 + 1100 * np.sin(angle)], axis=1)


def _field_db(points_m: np.ndarray) -> np.ndarray:
    """A smooth, repeatable shadowing field per station, [P, S] dB (what a map can learn)."""
    s = np.arange(STATIONS)
    phase = 0.7 * s
    return 4.0 * np.sin(points_m[:, :1] / 170.0 + phase) * np.cos(points_m[:, 1:] / 230.0 - phase)


def _samples(tx_m: np.ndarray, rng: np.random.Generator, noise_db: float = 1.0, field: bool = True) -> SampleArrays:
    n = len(tx_m)
    rx = np.broadcast_to(_stations_m()[None], (n, STATIONS, 2))
    distance = np.maximum(np.linalg.norm(rx - tx_m[:, None, :], axis=2), 1.0)
    common = rng.normal(0.0, 3.0, size=(n, 1))  # unknown transmit power per transmission
    rss = OFFSETS_DB - 10 * EXPONENT * np.log10(distance) + common + rng.normal(0.0, noise_db, size=(n, STATIONS))
    if field:
        rss = rss + _field_db(tx_m)
    return SampleArrays.from_fixed_receivers(_stations_m(), tx_m, rss, np.ones((n, STATIONS), dtype=bool))


def _predict(net: torch.nn.Module, samples: SampleArrays) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        outputs = [
            net(
                torch.from_numpy(part.rx_position_m),
                torch.from_numpy(part.rx_id),
                torch.from_numpy(np.where(part.heard, part.rss_dbm, 0.0).astype(np.float32)),
                torch.from_numpy(part.heard),
                torch.from_numpy(part.present),
            )
            for part in (samples.select(np.arange(i, min(i + 32, len(samples)))) for i in range(0, len(samples), 32))
        ]
    return (torch.cat([o[0] for o in outputs]).double().numpy(), torch.cat([o[1] for o in outputs]).double().numpy())


def _localizer(net: torch.nn.Module, directory) -> Localizer:  # noqa: ANN001
    """The runtime over an exported graph of `net` (what `heimdall localize` runs)."""
    export_onnx(net, directory / "model.onnx")
    config = {
        "name": "test", "version": 1, "reference_point": {"lat_deg": 45.0, "lon_deg": 9.0, "alt_m": 0.0},
        "station_ids": [f"s{i}" for i in range(STATIONS)], "max_batch": 16,
    }
    write_bundle_files(directory, config, {}, "test bundle")
    return Localizer(directory)


@pytest.fixture(scope="module")
def campaign() -> tuple[SampleArrays, SampleArrays]:
    rng = np.random.default_rng(7)
    train = _samples(rng.uniform(0.0, EXTENT_M, size=(500, 2)), rng)
    test = _samples(rng.uniform(100.0, EXTENT_M - 100.0, size=(150, 2)), rng)
    return train, test


@pytest.fixture(scope="module")
def fitted(campaign: tuple[SampleArrays, SampleArrays]):  # noqa: ANN201
    return fit_radio_map(campaign[0], STATIONS, seed=0)


def test_physics_fit_recovers_exponent_and_offsets() -> None:
    rng = np.random.default_rng(1)
    samples = _samples(rng.uniform(0.0, EXTENT_M, size=(300, 2)), rng, noise_db=0.0, field=False)
    physics = fit_physics(samples, STATIONS)
    assert physics.exponent == pytest.approx(EXPONENT, abs=1e-3)
    # Offsets are identified up to a common constant (absorbed by the unknown transmit power).
    np.testing.assert_allclose(physics.offset_db - physics.offset_db.mean(), OFFSETS_DB - OFFSETS_DB.mean(), atol=1e-3)
    assert np.abs(physics.residual_db).max() < 1e-4  # float32 readings


def test_beats_knn_and_ellipses_are_calibrated(campaign, fitted) -> None:  # noqa: ANN001
    train, test = campaign
    position, covariance = _predict(fitted.net, test)
    error = np.linalg.norm(position - test.tx_position_m, axis=1)
    knn = fit_knn(train.select(np.arange(400)), STATIONS)
    k = choose_k(knn, train.select(np.arange(400, 500)))
    knn_error = np.linalg.norm(fit_knn(train, STATIONS).predict(test, k) - test.tx_position_m, axis=1)
    # The map knows the path-loss law and the repeatable field; kNN only interpolates samples.
    assert np.median(error) < 0.9 * np.median(knn_error)
    d2 = mahalanobis_sq(test.tx_position_m - position, covariance)
    # One calibration serves interpolation and extrapolation (cross-fitted both ways), so
    # ellipses of samples inside the training cloud err on the wide side at 1 sigma.
    assert 0.25 < np.mean(d2 <= 1.0) < 0.65
    assert 0.75 < np.mean(d2 <= 4.0) < 0.97


def test_as_good_as_knn_where_knn_is_exact(campaign, fitted) -> None:  # noqa: ANN001
    train, _ = campaign
    # Transmissions at training places with the training readings: kNN (k=1) is exact.
    repeat = train.select(np.arange(60))
    position, _ = _predict(fitted.net, repeat)
    error = np.linalg.norm(position - repeat.tx_position_m, axis=1)
    step_m = float(fitted.net.grid_step_m)
    assert np.median(error) < step_m


@pytest.mark.slow
def test_lands_on_the_place_where_fixed_transmitters_are_heard_again(tmp_path) -> None:  # noqa: ANN001
    from heimdall.export.onnx_export import onnx_parity
    from heimdall.export.publish import parity_inputs

    # Fixed transmitters, each heard 6 times with fresh noise, anywhere inside grid cells:
    # kNN finds the place itself, and so must the model, not the nearest grid point.
    rng = np.random.default_rng(11)
    places = rng.uniform(100.0, EXTENT_M - 100.0, size=(120, 2))
    train = _samples(np.repeat(places, 5, axis=0), rng, noise_db=0.5)
    again = _samples(places[:60], rng, noise_db=0.5)
    fit = fit_radio_map(train, STATIONS, seed=0)
    knn = fit_knn(train, STATIONS)
    knn_error = np.linalg.norm(knn.predict(again, 1) - again.tx_position_m, axis=1)
    position, _ = _predict(fit.net, again)
    error = np.linalg.norm(position - again.tx_position_m, axis=1)
    step_m = float(fit.net.grid_step_m)
    assert fit.hyperparameters.fingerprint_point_mass > 0.0
    assert np.median(knn_error) < 0.1 * step_m
    assert np.median(error) < 0.1 * step_m, (np.median(error), step_m)
    # The fit scored this setting with the same posterior the model computes.
    hyper = fit.hyperparameters
    scored = posterior_answer(held_out_terms(fit.net, again), (hyper.fingerprint_bandwidth_db, hyper.fingerprint_background),
                            hyper.fingerprint_weight, hyper.temperature, hyper.fingerprint_point_mass)
    np.testing.assert_allclose(scored, position, atol=0.05)
    # The exported graph lands there too.
    assert onnx_parity(fit.net, export_onnx(fit.net, tmp_path / "model.onnx"), parity_inputs(again, limit=16)) < 0.5


@pytest.mark.slow
def test_one_receiver_off_by_8_db_barely_moves_the_answer(campaign, fitted, tmp_path) -> None:  # noqa: ANN001
    _, test = campaign
    localizer = _localizer(fitted.net, tmp_path)
    plain = localizer.predict(test)
    position, covariance = plain.position_m, plain.covariance_m2
    shifted_rss = test.rss_dbm.copy()
    shifted_rss[:, 3] += 8.0
    shifted = SampleArrays(**{**test.__dict__, "rss_dbm": shifted_rss})
    drifted = localizer.predict(shifted)
    moved, moved_covariance = drifted.position_m, drifted.covariance_m2
    error = np.linalg.norm(position - test.tx_position_m, axis=1)
    moved_error = np.linalg.norm(moved - test.tx_position_m, axis=1)
    assert np.median(moved_error) < 1.3 * np.median(error) + 10.0
    # The ellipse does not claim more certainty for the worse input.
    assert np.median(np.linalg.det(moved_covariance)) >= 0.95 * np.median(np.linalg.det(covariance))


def test_drift_correction_repairs_a_drifted_receiver_and_turns_off(campaign, fitted, tmp_path) -> None:  # noqa: ANN001
    """Without the second pass the runtime gives the graph's one-pass answer; with it, a
    receiver reading 8 dB high on every transmission of the batch is found and taken out."""
    _, test = campaign
    localizer = _localizer(fitted.net, tmp_path)
    one_pass, _ = _predict(fitted.net, test)
    off = localizer.predict(test, drift_correction=False)
    np.testing.assert_allclose(off.position_m, one_pass, atol=0.5)
    shifted_rss = test.rss_dbm.copy()
    shifted_rss[:, 3] += 8.0
    shifted = SampleArrays(**{**test.__dict__, "rss_dbm": shifted_rss})
    errors = {}
    for correct in (True, False):
        answer = localizer.predict(shifted, drift_correction=correct).position_m
        errors[correct] = float(np.median(np.linalg.norm(answer - test.tx_position_m, axis=1)))
    clean = float(np.median(np.linalg.norm(localizer.predict(test).position_m - test.tx_position_m, axis=1)))
    assert errors[True] < errors[False]
    assert errors[True] < 1.2 * clean + 5.0


def test_the_calibration_scores_the_runtime_s_second_pass(campaign, fitted, tmp_path) -> None:  # noqa: ANN001
    """The fit calibrates its ellipses on held-out answers given as the runtime gives them:
    `second_pass_terms` of a batch reproduce `Localizer.predict`'s two-pass answers and
    covariances, and differ from the first pass where a receiver drifted."""
    _, test = campaign
    shifted_rss = test.rss_dbm.copy()
    shifted_rss[:, 3] += 8.0
    shifted = dataclasses.replace(test, rss_dbm=shifted_rss)
    hyper = fitted.hyperparameters
    key = (hyper.fingerprint_bandwidth_db, hyper.fingerprint_background)
    terms = second_pass_terms(fitted.net, shifted, key)
    answer, spread = posterior_moments(terms, key, hyper.fingerprint_weight, hyper.temperature,
                                       hyper.covariance_temperature, hyper.fingerprint_point_mass)
    widening = novelty_factor(terms.nearest_db, hyper.novelty_db)
    covariance = hyper.covariance_scale * floored_covariance(spread, hyper.covariance_floor_m,
                                                             float(fitted.net.grid_step_m), widening)
    runtime = _localizer(fitted.net, tmp_path).predict(shifted, check_area=False)
    moved = np.linalg.norm(answer - runtime.position_m, axis=1)
    assert np.median(moved) < 0.5 and np.mean(moved < 5.0) > 0.95
    np.testing.assert_allclose(np.linalg.det(covariance), np.linalg.det(runtime.covariance_m2), rtol=0.2)
    first = posterior_answer(held_out_terms(fitted.net, shifted), key, hyper.fingerprint_weight, hyper.temperature,
                             hyper.fingerprint_point_mass)
    error = {name: np.median(np.linalg.norm(a - test.tx_position_m, axis=1)) for name, a in (("one", first),
                                                                                              ("two", answer))}
    assert error["two"] < error["one"]


def test_receiver_never_seen_in_training_gives_a_valid_answer(campaign, fitted) -> None:  # noqa: ANN001
    _, test = campaign
    part = test.select(np.arange(20))
    extra = SampleArrays(
        sample_id=part.sample_id,
        rx_position_m=np.concatenate([part.rx_position_m, np.full((20, 1, 3), 500.0, dtype=np.float32)], axis=1),
        rx_id=np.concatenate([part.rx_id, np.full((20, 1), -1)], axis=1),
        rss_dbm=np.concatenate([part.rss_dbm, np.full((20, 1), -90.0, dtype=np.float32)], axis=1),
        snr_db=np.concatenate([part.snr_db, np.full((20, 1), np.nan, dtype=np.float32)], axis=1),
        heard=np.concatenate([part.heard, np.ones((20, 1), dtype=bool)], axis=1),
        present=np.concatenate([part.present, np.ones((20, 1), dtype=bool)], axis=1),
        tx_position_m=part.tx_position_m, tx_lat_deg=part.tx_lat_deg, tx_lon_deg=part.tx_lon_deg,
        tx_power_dbm=part.tx_power_dbm, split=part.split,
    )
    base, _ = _predict(fitted.net, part)
    position, covariance = _predict(fitted.net, extra)
    assert np.all(np.isfinite(position)) and np.all(np.isfinite(covariance))
    assert np.all(np.linalg.eigvalsh(covariance) > 0)
    # A stranger's reading informs through the path-loss law only; it must not throw the answer away.
    assert np.median(np.linalg.norm(position - part.tx_position_m, axis=1)) < 2.0 * np.median(
        np.linalg.norm(base - part.tx_position_m, axis=1)
    ) + 50.0


def test_separable_kernel_matches_the_direct_sum(campaign) -> None:  # noqa: ANN001
    train, test = campaign
    hyper = RadioMapHyperparameters(50.0, 2.0, 1e-2, 1.0, 1.0)
    net = apply_hyperparameters(build_radio_map(train, STATIONS, 50.0), hyper)
    part = test.select(np.arange(4))
    station = net._stations(torch.from_numpy(part.rx_id))
    rss = torch.from_numpy(part.rss_dbm)
    distance, index = net.fingerprint_neighbours(station, rss, torch.from_numpy(part.heard), torch.from_numpy(part.present))
    fast = net.fingerprint_log_density(distance, index, net.fingerprint_bandwidth_db, net.fingerprint_background)
    weight = torch.exp(-0.5 * (distance / net.fingerprint_bandwidth_db) ** 2)
    offset = net.grid_m[None, :, None, :] - net.fingerprint_position_m[index][:, None]
    kernel = torch.exp(-0.5 * (offset**2).sum(-1) / net.fingerprint_position_bandwidth_m**2)
    direct = torch.log(net.fingerprint_background + (kernel * weight[:, None]).sum(-1))
    torch.testing.assert_close(fast, direct, rtol=1e-4, atol=1e-5)


def test_held_out_terms_do_not_depend_on_the_chunk_size(campaign, monkeypatch) -> None:  # noqa: ANN001
    from heimdall.training import radio_map_heldout

    train, test = campaign
    net = build_radio_map(train, STATIONS, 50.0)
    part = test.select(np.arange(40))
    whole = held_out_terms(net, part)
    grid_points = len(net.grid_m)
    # A network this wide gets one sample per chunk; the campaign's 8 receivers get the most.
    assert radio_map_heldout.chunk_rows(grid_points, 10_000) == 1
    budget = radio_map_heldout._CHUNK_ELEMENTS
    assert radio_map_heldout.chunk_rows(grid_points, STATIONS) == min(32, budget // (grid_points * STATIONS))
    monkeypatch.setattr(radio_map_heldout, "_CHUNK_ELEMENTS", 3 * grid_points * STATIONS)
    assert radio_map_heldout.chunk_rows(grid_points, STATIONS) == 3
    chunked = held_out_terms(net, part)
    torch.testing.assert_close(chunked.log_likelihood, whole.log_likelihood)
    np.testing.assert_array_equal(chunked.neighbour_position_m.numpy(), whole.neighbour_position_m.numpy())


def test_held_out_terms_skip_the_silences_only_where_there_are_none(campaign) -> None:  # noqa: ANN001
    train, test = campaign
    net = build_radio_map(train, STATIONS, 50.0)
    part = test.select(np.arange(64))
    # The second half's station 2 listened and heard nothing: its chunks need the silence term.
    heard = part.heard.copy()
    heard[32:, 2] = False
    part = SampleArrays(**{**part.__dict__, "heard": heard, "rss_dbm": np.where(heard, part.rss_dbm, np.nan)})
    inputs = (torch.from_numpy(part.rx_position_m), net._stations(torch.from_numpy(part.rx_id)),
              torch.from_numpy(np.where(heard, part.rss_dbm, 0.0).astype(np.float32)), torch.from_numpy(heard),
              torch.from_numpy(part.present))
    with torch.no_grad():
        full = net.map_log_likelihood(*inputs)
        skipped = net.map_log_likelihood(*inputs, any_silent=False)
    # Where nothing was silent the skipped term is exactly zero; where it was, it counts.
    torch.testing.assert_close(skipped[:32], full[:32], rtol=0.0, atol=0.0)
    assert torch.all((full[32:] - skipped[32:]).abs().amax(dim=1) > 0.1)
    torch.testing.assert_close(held_out_terms(net, part).log_likelihood, full)


@pytest.mark.slow
def test_onnx_graph_matches_torch(campaign, fitted, tmp_path) -> None:  # noqa: ANN001
    from heimdall.export.onnx_export import export_onnx, onnx_parity
    from heimdall.export.publish import parity_inputs

    _, test = campaign
    path = export_onnx(fitted.net, tmp_path / "model.onnx")
    assert onnx_parity(fitted.net, path, parity_inputs(test, limit=16)) < 0.5


def _with_extra_stations(samples: SampleArrays, rng: np.random.Generator) -> SampleArrays:
    """Station 8 listens to everything and never hears; station 9 hears 3 transmissions only."""
    n = len(samples)
    position = np.concatenate([samples.rx_position_m, np.tile(np.array([[[300.0, 1700.0, 0.0], [1700.0, 300.0, 0.0]]],
                                                                      dtype=np.float32), (n, 1, 1))], axis=1)
    rss9 = np.full(n, np.nan, dtype=np.float32)
    rss9[:3] = rng.normal(-70.0, 5.0, size=3)
    present9 = np.zeros(n, dtype=bool)
    present9[:3] = True
    return SampleArrays(
        sample_id=samples.sample_id,
        rx_position_m=position,
        rx_id=np.concatenate([samples.rx_id, np.tile(np.array([[8, 9]]), (n, 1))], axis=1),
        rss_dbm=np.concatenate([samples.rss_dbm, np.full((n, 1), np.nan, dtype=np.float32), rss9[:, None]], axis=1),
        snr_db=np.concatenate([samples.snr_db, np.full((n, 2), np.nan, dtype=np.float32)], axis=1),
        heard=np.concatenate([samples.heard, np.zeros((n, 1), dtype=bool), present9[:, None]], axis=1),
        present=np.concatenate([samples.present, np.ones((n, 1), dtype=bool), present9[:, None]], axis=1),
        tx_position_m=samples.tx_position_m, tx_lat_deg=samples.tx_lat_deg, tx_lon_deg=samples.tx_lon_deg,
        tx_power_dbm=samples.tx_power_dbm, split=samples.split,
    )


@pytest.mark.slow
def test_silent_and_rare_receivers_do_not_hurt(campaign, fitted) -> None:  # noqa: ANN001
    train, test = campaign
    rng = np.random.default_rng(3)
    noisy = fit_radio_map(_with_extra_stations(train, rng), STATIONS + 2, seed=0)
    base_error = np.linalg.norm(_predict(fitted.net, test)[0] - test.tx_position_m, axis=1)
    error = np.linalg.norm(_predict(noisy.net, _with_extra_stations(test, rng))[0] - test.tx_position_m, axis=1)
    assert np.median(error) < 1.15 * np.median(base_error) + 5.0


def test_a_checkpoint_from_before_fingerprint_points_loads_without_them(campaign, fitted, tmp_path) -> None:  # noqa: ANN001
    from heimdall.pipelines.radio_map_training import write_radio_map_checkpoint
    from heimdall.training.checkpoints import load_checkpoint

    path = write_radio_map_checkpoint(tmp_path / "old.ckpt", fitted.net, {"model_kind": "radio_map"})
    checkpoint = torch.load(path, weights_only=False)
    del checkpoint["state_dict"]["model.fingerprint_point_mass"]
    del checkpoint["state_dict"]["model.silence_weight"]  # and from before the silences' weight
    torch.save(checkpoint, path)
    net, _ = load_checkpoint(path)
    assert float(net.fingerprint_point_mass) == 0.0
    assert float(net.silence_weight) == 1.0  # each silence counted in full, as it was fitted
    _, test = campaign
    reference = apply_hyperparameters(build_radio_map(campaign[0], STATIONS, fitted.hyperparameters.length_scale_m),
                                      dataclasses.replace(fitted.hyperparameters, fingerprint_point_mass=0.0))
    np.testing.assert_allclose(_predict(net, test)[0], _predict(reference, test)[0], atol=1e-3)
