"""benchmarks/radio_map_fit.py: the timed campaign, in one day or over several drifting days."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest

from heimdall.data.sessions import session_starts


@pytest.fixture(scope="module")
def bench(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    return load_benchmark("radio_map_fit")


def test_one_day_is_one_session_of_ten_second_steps(bench: ModuleType) -> None:
    samples = bench.campaign(600, 8, np.random.default_rng(0))
    assert len(session_starts(samples.timestamp_s)) == 1
    np.testing.assert_allclose(np.diff(samples.timestamp_s), 10.0)


def test_days_are_sessions_whose_receivers_drift_by_a_constant_each(bench: ModuleType) -> None:
    one = bench.campaign(600, 8, np.random.default_rng(0))
    three = bench.campaign(600, 8, np.random.default_rng(0), days=3)
    starts = session_starts(three.timestamp_s)
    assert len(starts) == 3
    np.testing.assert_allclose(np.diff(starts), 86_400.0, atol=60.0)
    np.testing.assert_array_equal(one.tx_position_m, three.tx_position_m)
    # The same campaign, each receiver shifted by one offset per day: constant within a day,
    # different between days (N(0, 3^2) dB draws).
    shift = three.rss_dbm.astype(np.float64) - one.rss_dbm.astype(np.float64)
    day = np.searchsorted(starts, three.timestamp_s, side="right") - 1
    both = three.heard & one.heard
    per_day = np.full((3, 8), np.nan)
    for k in range(3):
        for s in range(8):
            values = shift[(day == k) & both[:, s], s]
            assert np.ptp(values) < 1e-3
            per_day[k, s] = values[0]
    assert np.all(np.abs(np.diff(per_day, axis=0)) > 1e-3)
    assert 1.0 < float(np.std(per_day)) < 6.0
