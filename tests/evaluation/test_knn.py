"""kNN fingerprinting on synthetic fingerprints whose RSS is a smooth function of position."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from heimdall.data.layout import SampleArrays
from heimdall.errors import InputError
from heimdall.evaluation import knn
from heimdall.evaluation.knn import DEFAULT_K_CANDIDATES, choose_k, fit_knn

SIDE_M = 1_000.0
STATIONS_M = np.array([[0, 0], [1000, 0], [0, 1000], [1000, 1000], [500, -200], [-200, 500], [1200, 500]], float)
SENSITIVITY_DBM = -118.0


def _samples(n: int, seed: int, power_spread_db: float = 10.0) -> SampleArrays:
    """Log-distance RSS (exponent 3, 1 dB noise, TX power +-`power_spread_db`) on a square."""
    rng = np.random.default_rng(seed)
    tx = rng.uniform(0.0, SIDE_M, size=(n, 2))
    r = len(STATIONS_M)
    distance_m = np.maximum(np.linalg.norm(tx[:, None, :] - STATIONS_M[None], axis=-1), 1.0)
    power_dbm = rng.uniform(-power_spread_db, power_spread_db, size=(n, 1))
    rss = -20.0 + power_dbm - 30.0 * np.log10(distance_m) + rng.normal(0.0, 1.0, size=(n, r))
    present = np.ones((n, r), dtype=bool)
    present[:, -1] = rng.random(n) > 0.2  # one station is sometimes off air
    heard = present & (rss > SENSITIVITY_DBM)
    positions = np.concatenate([STATIONS_M, np.zeros((r, 1))], axis=1)
    return SampleArrays(
        sample_id=np.arange(n, dtype=np.int64),
        rx_position_m=np.broadcast_to(positions, (n, r, 3)).astype(np.float32),
        rx_id=np.broadcast_to(np.arange(r), (n, r)).astype(np.int64),
        rss_dbm=np.where(heard, rss, np.nan).astype(np.float32),
        snr_db=np.full((n, r), np.nan, dtype=np.float32),
        heard=heard,
        present=present,
        tx_position_m=tx.astype(np.float32),
        tx_lat_deg=np.full(n, np.nan),
        tx_lon_deg=np.full(n, np.nan),
        tx_power_dbm=power_dbm[:, 0].astype(np.float32),
        split=np.zeros(n, dtype=np.int8),
    )


def _median_error_m(estimate: np.ndarray, samples: SampleArrays) -> float:
    """Median error (m); a sample without an estimate counts as infinitely wrong."""
    error_m = np.linalg.norm(estimate - samples.tx_position_m, axis=1)
    return float(np.median(np.where(np.isfinite(error_m), error_m, np.inf)))


def test_knn_recovers_positions_with_k_chosen_on_validation() -> None:
    train, val, test = _samples(3000, 0), _samples(300, 1), _samples(300, 2)
    assert not train.heard.all() and not train.present.all()  # the not-heard paths are exercised
    extent_m = np.ptp(train.tx_position_m, axis=0)
    assert np.all(extent_m > 0.95 * SIDE_M)
    model = fit_knn(train, len(STATIONS_M))
    k = choose_k(model, val)
    assert k in DEFAULT_K_CANDIDATES
    error_m = _median_error_m(model.predict(test, k), test)
    # Guessing the centre of the square gives ~380 m; kNN must do far better.
    assert error_m < 0.06 * SIDE_M
    assert _median_error_m(model.predict(test, k, weighted=True), test) < 0.06 * SIDE_M
    # The chosen k is at least as good on validation as the other candidates.
    chosen = _median_error_m(model.predict(val, k), val)
    assert all(chosen <= _median_error_m(model.predict(val, c), val) + 1e-6 for c in DEFAULT_K_CANDIDATES)


def test_mean_removal_ignores_a_common_offset() -> None:
    train, test = _samples(800, 3), _samples(100, 4)
    shifted = replace(test, rss_dbm=test.rss_dbm + np.float32(12.0))
    model = fit_knn(train, len(STATIONS_M), mean_removed=True)
    np.testing.assert_allclose(model.predict(shifted, 5), model.predict(test, 5), atol=1e-3)
    raw = fit_knn(train, len(STATIONS_M), mean_removed=False)
    assert np.abs(raw.predict(shifted, 5) - raw.predict(test, 5)).max() > 10.0


def test_mean_removal_helps_when_tx_power_differs_from_training() -> None:
    # Trained on one transmitter power, tested on others (another radio, another setting).
    train, test = _samples(2000, 5, power_spread_db=0.0), _samples(300, 6, power_spread_db=15.0)
    estimate = fit_knn(train, len(STATIONS_M)).predict(test, 5)
    # With the offset removed, a sample that heard nothing has no fingerprint left.
    assert np.array_equal(np.isnan(estimate[:, 0]), ~test.heard.any(axis=1))
    with_removal = _median_error_m(estimate, test)
    without = _median_error_m(fit_knn(train, len(STATIONS_M), mean_removed=False).predict(test, 5), test)
    assert with_removal < 0.7 * without


def test_distance_uses_only_common_stations_and_chunks_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    train, test = _samples(500, 7), _samples(50, 8)
    model = fit_knn(train, len(STATIONS_M), not_heard_margin_db=None, min_common_stations=5)
    values, comparable = model.fingerprints(test)
    full = model.distances_db(values, comparable)
    common = comparable.astype(int) @ model.comparable.astype(int).T
    assert np.all(np.isinf(full[common < 5])) and np.all(np.isfinite(full[common >= 5]))
    # Brute force for one pair: RMS of the mean-removed difference over shared stations.
    i, j = np.argwhere(common >= 5)[0]
    shared = comparable[i] & model.comparable[j]
    diff = values[i, shared] - model.values_db[j, shared]
    assert full[i, j] == pytest.approx(np.sqrt(np.mean((diff - diff.mean()) ** 2)))
    monkeypatch.setattr(knn, "_BLOCK_BYTES", 8 * 6 * len(model) * 7)  # blocks of 7 queries
    index, distance = model.neighbours(test, 3)
    np.testing.assert_allclose(distance, np.sort(full, axis=1)[:, :3])
    np.testing.assert_allclose(np.take_along_axis(full, index, axis=1), distance)


def test_bad_k_is_an_input_error() -> None:
    model = fit_knn(_samples(10, 9), len(STATIONS_M))
    with pytest.raises(InputError, match="k must be"):
        model.predict(_samples(3, 10), 11)
    assert choose_k(model, _samples(20, 11), candidates=(1, 3, 50)) in (1, 3)
