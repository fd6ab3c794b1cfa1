"""Receiver offsets per measurement session: a campaign measured on several days whose
uncalibrated receivers drift between them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from heimdall.data.layout import SampleArrays
from heimdall.export.bundle import model_card, write_bundle_files
from heimdall.export.localizer import Localizer
from heimdall.export.onnx_export import export_onnx
from heimdall.data.sessions import SESSION_GAP_S, session_index, session_starts, shift_readings
from heimdall.training.radio_map_build import RadioMapHyperparameters, build_radio_map
from heimdall.training.radio_map_fit import fit_radio_map
from heimdall.training.session_offsets import estimate_session_offsets, fit_session_offsets
from tests.training.test_radio_map import EXTENT_M, STATIONS, _samples

DAY_S = 86400.0
DAYS = 3


def _double_centred(table: np.ndarray) -> np.ndarray:
    """What neither one offset per receiver nor one per transmission can absorb."""
    return table - table.mean(0, keepdims=True) - table.mean(1, keepdims=True) + table.mean()


def _campaign(n: int, drift_db: float, seed: int) -> tuple[SampleArrays, np.ndarray]:
    """n transmissions at random places on DAYS days (each day retraces the others' area),
    each receiver's readings on day d shifted by offsets [d, s] ~ N(0, drift_db^2)."""
    rng = np.random.default_rng(seed)
    samples = _samples(rng.uniform(0.0, EXTENT_M, size=(n, 2)), rng)
    day = rng.integers(0, DAYS, n)
    offsets = rng.normal(0.0, drift_db, (DAYS, STATIONS))
    rss = samples.rss_dbm + offsets[day][:, :STATIONS].astype(samples.rss_dbm.dtype)
    times = 1.65e9 + day * DAY_S + rng.uniform(0.0, 2 * 3600.0, n)
    return replace(samples, rss_dbm=rss, timestamp_s=times), offsets


def test_sessions_split_at_long_pauses_and_a_query_takes_its_nearest_transmissions_session() -> None:
    hour = 3600.0
    times = np.array([0.0, 600.0, 3 * hour, 8 * hour, 2 * DAY_S, 2 * DAY_S + 1800.0]) + 1e9
    starts = session_starts(times)
    np.testing.assert_array_equal(starts, [1e9, 1e9 + 2 * DAY_S])  # 5 h pauses keep a session, 40 h split it
    queries = 1e9 + np.array([1200.0, 8 * hour + SESSION_GAP_S, 8 * hour + SESSION_GAP_S + 1.0, 2 * DAY_S - 60.0,
                              10 * DAY_S, np.nan, -hour])
    np.testing.assert_array_equal(session_index(queries, starts, times), [0, 0, -1, 1, -1, -1, 0])
    assert session_starts(np.array([np.nan])).size == 0
    assert np.all(session_index(queries, np.zeros(0), times) == -1)


def test_shifting_takes_each_sessions_offsets_out_of_heard_readings_only() -> None:
    rng = np.random.default_rng(1)
    samples = _samples(rng.uniform(0.0, EXTENT_M, size=(4, 2)), rng)
    heard = samples.heard.copy()
    heard[0, 1] = False
    samples = replace(samples, heard=heard, rss_dbm=np.where(heard, samples.rss_dbm, 0.0).astype(np.float32))
    table = np.arange(2 * STATIONS, dtype=np.float64).reshape(2, STATIONS)
    shifted = shift_readings(samples, np.array([0, 1, -1, 1]), table)
    change = samples.rss_dbm - shifted.rss_dbm
    np.testing.assert_allclose(change[0], np.where(heard[0], table[0], 0.0), atol=1e-5)
    np.testing.assert_allclose(change[1], table[1], atol=1e-5)
    np.testing.assert_allclose(change[2], 0.0)  # a query from no training session keeps its readings


def test_each_days_offsets_are_recovered_where_days_retrace_the_same_places() -> None:
    samples, offsets = _campaign(600, 4.0, seed=2)
    session = session_index(samples.timestamp_s, session_starts(samples.timestamp_s), samples.timestamp_s)
    estimated = estimate_session_offsets(samples, STATIONS, session)
    truth = _double_centred(offsets)
    left = np.sqrt(np.mean((_double_centred(estimated) - truth) ** 2))
    assert np.sqrt(np.mean(truth**2)) > 2.5
    assert left < 0.5  # dB of the drift left, against 2.5-4 dB before


def test_a_campaign_that_did_not_drift_is_left_nearly_alone() -> None:
    samples, _ = _campaign(600, 0.0, seed=3)
    shifted, hyper = fit_session_offsets(samples, STATIONS, RadioMapHyperparameters(100.0, 3.0, 0.1, 1.0, 1.0))
    assert len(hyper.session_starts_s) == DAYS
    assert np.sqrt(np.mean(np.square(hyper.session_offsets_db))) < 0.3
    np.testing.assert_allclose(shifted.rss_dbm, samples.rss_dbm, atol=1.0)
    # One session (no pause over 6 h): nothing to estimate, nothing stored.
    one_day = replace(samples, timestamp_s=1.65e9 + np.linspace(0.0, 3600.0, len(samples)))
    same, kept = fit_session_offsets(one_day, STATIONS, hyper.__class__(100.0, 3.0, 0.1, 1.0, 1.0))
    assert kept.session_offsets_db == () and same is not None


def test_the_runtime_takes_a_querys_session_offsets_out_when_it_was_sent_within_one(tmp_path) -> None:  # noqa: ANN001
    train, offsets = _campaign(400, 4.0, seed=4)
    session = session_index(train.timestamp_s, session_starts(train.timestamp_s), train.timestamp_s)
    export_onnx(build_radio_map(shift_readings(train, session, offsets), STATIONS, EXTENT_M / 60.0),
                tmp_path / "model.onnx")
    hyper = RadioMapHyperparameters(EXTENT_M / 60.0, 3.0, 0.1, 1.0, 1.0,
                                    session_starts_s=tuple(session_starts(train.timestamp_s)),
                                    session_offsets_db=tuple(map(tuple, offsets)))
    config = {
        "name": "test", "version": 1, "reference_point": {"lat_deg": 45.0, "lon_deg": 9.0, "alt_m": 0.0},
        "station_ids": [f"s{i}" for i in range(STATIONS)], "max_batch": 16, "hyperparameters": hyper.to_dict(),
        "training_times_s": [int(t) for t in np.unique(np.round(train.timestamp_s))],
    }
    write_bundle_files(tmp_path, config, {}, "test bundle")
    localizer = Localizer(tmp_path)
    queries = train.select(np.arange(40))
    clean = shift_readings(queries, session[:40], offsets)
    timed = localizer.predict(queries, drift_correction=False)
    expected = localizer.predict(replace(clean, timestamp_s=None), drift_correction=False)
    np.testing.assert_allclose(timed.position_m, expected.position_m, atol=1e-3)
    # Sent a week later: no training session to read it with, the readings stay as given.
    later = localizer.predict(replace(queries, timestamp_s=queries.timestamp_s + 7 * DAY_S), drift_correction=False)
    untimed = localizer.predict(replace(queries, timestamp_s=None), drift_correction=False)
    np.testing.assert_allclose(later.position_m, untimed.position_m, atol=1e-6)
    card = model_card({**config, "network": {"name": "n", "frequency_hz": 462.7e6}, "dataset_kind": "measured"}, {})
    assert f"receiver offsets per training session: {DAYS} sessions" in card


@pytest.mark.slow
def test_the_fit_keeps_per_session_offsets_where_they_pay_and_localises_better_with_them() -> None:
    samples, offsets = _campaign(600, 4.0, seed=5)
    train, test = samples.select(np.arange(450)), samples.select(np.arange(450, 600))
    fit = fit_radio_map(train, STATIONS, seed=0)
    assert len(fit.hyperparameters.session_offsets_db) == DAYS
    assert fit.cross_validation["session_count"] == DAYS
    plain = fit_radio_map(replace(train, timestamp_s=None), STATIONS, seed=0)
    assert plain.hyperparameters.session_offsets_db == ()
    hyper = fit.hyperparameters
    session = session_index(test.timestamp_s, np.asarray(hyper.session_starts_s), train.timestamp_s)
    assert np.all(session >= 0)
    from tests.training.test_radio_map import _predict

    with_sessions, _ = _predict(fit.net, shift_readings(test, session, np.asarray(hyper.session_offsets_db)))
    without, _ = _predict(plain.net, test)
    truth = test.tx_position_m
    error_with = np.median(np.linalg.norm(with_sessions - truth, axis=1))
    error_without = np.median(np.linalg.norm(without - truth, axis=1))
    assert error_with < 0.8 * error_without
