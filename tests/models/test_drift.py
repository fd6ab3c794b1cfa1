"""The runtime's re-estimate of each receiver's drift from the batch being localised."""

from __future__ import annotations

import numpy as np

from heimdall.models.drift import OFFSET_SHRINKAGE, station_corrections

STATIONS = 5


def _residuals(drift_db: np.ndarray, heard: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What the graph reports: each heard reading's drift less the transmission's common
    offset (the mean over its heard readings), plus 0.5 dB of noise; NaN where not heard."""
    reading = np.where(heard, drift_db[None, :] + rng.normal(0.0, 0.5, heard.shape), np.nan)
    common = np.nanmean(reading, axis=1, keepdims=True)
    return np.where(heard, reading - common, np.nan)


def test_a_drifted_receiver_is_found_from_transmissions_heard_by_several() -> None:
    rng = np.random.default_rng(3)
    drift_db = np.array([6.0, 0.0, 0.0, 0.0, 0.0])
    heard = np.ones((200, STATIONS), dtype=bool)
    rx_id = np.broadcast_to(np.arange(STATIONS), heard.shape)
    correction = station_corrections(rx_id, heard, _residuals(drift_db, heard, rng), STATIONS)
    # The common offset takes a fifth of the drift; 200 readings against 10 pseudo-readings.
    expected = (drift_db - drift_db.mean()) * 200 / (200 + OFFSET_SHRINKAGE)
    np.testing.assert_allclose(correction, expected, atol=0.1)


def test_transmissions_heard_by_one_or_two_receivers_do_not_dilute_the_estimate() -> None:
    rng = np.random.default_rng(4)
    drift_db = np.array([6.0, 0.0, -2.0, 0.0, 0.0])
    heard = np.ones((100, STATIONS), dtype=bool)
    rx_id = np.broadcast_to(np.arange(STATIONS), heard.shape)
    residual = _residuals(drift_db, heard, rng)
    alone = station_corrections(rx_id, heard, residual, STATIONS)
    # A sparse network's typical batch: most transmissions reach one or two gateways, whose
    # residuals after the common offset are zero, or plus and minus half a difference.
    few = np.zeros((300, STATIONS), dtype=bool)
    few[np.arange(300), rng.integers(0, STATIONS, 300)] = True
    pairs = np.flatnonzero(rng.random(300) < 0.5)
    few[pairs, (rng.integers(1, STATIONS, pairs.size) + few[pairs].argmax(axis=1)) % STATIONS] = True
    mixed = station_corrections(
        np.broadcast_to(np.arange(STATIONS), (400, STATIONS)), np.concatenate([heard, few]),
        np.concatenate([residual, _residuals(drift_db, few, rng)]), STATIONS,
    )
    np.testing.assert_allclose(mixed, alone)
    assert mixed[0] > 4.0 and mixed[2] < -2.0
    # Only such transmissions: nothing to go on, no correction.
    only_few = station_corrections(np.broadcast_to(np.arange(STATIONS), few.shape),
                                   few, _residuals(drift_db, few, rng), STATIONS)
    np.testing.assert_array_equal(only_few, np.zeros(STATIONS))
