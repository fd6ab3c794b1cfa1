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
