"""benchmarks/not_received.py: the three ways a file can write "heard nothing"."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    return load_benchmark("not_received")


def test_campaign_is_sparse_and_every_transmission_heard(bench: ModuleType) -> None:
    gateways, tx, rss, heard = bench.campaign(np.random.default_rng(1), 900, -132.0)
    assert gateways.shape == (bench.GATEWAYS, 2) and heard.any(axis=1).all()
    assert 0.04 < heard.mean() < 0.2  # a LoRaWAN-like network: each gateway hears a few percent
    # The path-loss law: the strongest gateway of a transmission is nearly always among its closest.
    distance = np.linalg.norm(gateways[None] - tx[:, None], axis=2)
    rank = (distance < distance[np.arange(len(tx)), np.argmax(rss, axis=1)][:, None]).sum(axis=1)
    assert np.median(rank) <= 2


def test_the_three_ways_hold_the_same_readings(bench: ModuleType) -> None:
    gateways, tx, rss, heard = bench.campaign(np.random.default_rng(2), 300, -136.0)
    marker, nothing, absent = (bench.as_samples(gateways, tx, rss, heard, way) for way in bench.WAYS)
    assert marker.heard.all() and np.all(marker.rss_dbm[~heard] == bench.MARKER_DBM)
    assert np.array_equal(nothing.heard, heard) and nothing.present.all()
    assert np.array_equal(absent.present, heard)
    np.testing.assert_allclose(marker.rss_dbm[heard], nothing.rss_dbm[heard])


@pytest.mark.slow
def test_run_reports_every_way(bench: ModuleType) -> None:
    result = bench.run(3, -136.0, samples=900)
    for way in bench.WAYS:
        figures = result[way]
        assert figures["model_median_m"] > 0 and figures["fit_s"] > 0 and figures["knn_k"] >= 1
    # Both readers of the same rows place transmissions within the campaign's extent.
    assert result["heard_nothing"]["model_median_m"] < bench.EXTENT_M / 2


def test_written_campaign_reads_back_as_the_same_readings(bench: ModuleType, tmp_path) -> None:  # noqa: ANN001
    from heimdall.data.measurement_files import read_measurements

    path = tmp_path / "city.csv"
    n = bench.write_csv(path, seed=4, samples=300, sensitivity_dbm=-132.0, days=10.0)
    gateways, tx, rss, heard = bench.campaign(np.random.default_rng(4), 300, -132.0)
    table = read_measurements(path, require_truth=True)
    samples, _ = table.to_samples(bench.REFERENCE, [f"gw{i:02d}" for i in range(bench.GATEWAYS)])
    assert len(samples) == n == len(tx)
    # -200 is read as "heard nothing", every gateway listening; the heard readings to 0.1 dB.
    assert np.array_equal(samples.heard, heard) and samples.present.all()
    np.testing.assert_allclose(samples.rss_dbm[heard], rss[heard], atol=0.051)
    np.testing.assert_allclose(samples.tx_position_m, tx, atol=0.05)  # lat/lon round-trip, to centimetres
    times = samples.timestamp_s
    assert np.all(np.diff(times) >= 0) and 0.5 * 86_400 < times[-1] - times[0] <= 10 * 86_400
