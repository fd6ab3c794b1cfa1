"""benchmarks/moved_receiver.py: a gateway moved since training, read four ways."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    return load_benchmark("moved_receiver")


def test_moved_readings_follow_the_path_loss_law(bench: ModuleType) -> None:
    tx = np.array([[0.0, 100.0], [0.0, 400.0], [300.0, 0.0]])
    rss = np.array([-80.0, -95.0, -90.0])
    field = np.array([2.0, -1.0, 0.5])
    gateway = np.zeros(2)
    # Not moved, same shadowing: the readings as they were.
    np.testing.assert_allclose(bench.moved_readings(gateway, gateway, tx, rss, field, field), rss)
    # Twice as far from the first transmitter: 10 n log10(2) dB weaker (n = 3.5: 10.54 dB).
    farther = bench.moved_readings(gateway, np.array([0.0, -100.0]), tx[:1], rss[:1], field[:1], field[:1])
    assert farther[0] == pytest.approx(rss[0] - 35.0 * np.log10(2.0), abs=1e-9)
    # A new place's shadowing replaces the old place's, dB for dB.
    reshadowed = bench.moved_readings(gateway, gateway, tx, rss, field, field + 3.0)
    np.testing.assert_allclose(reshadowed, rss + 3.0)


def test_the_campaign_with_its_field_is_the_same_campaign(load_benchmark: Callable[[str], ModuleType]) -> None:
    not_received = load_benchmark("not_received")
    plain = not_received.campaign(np.random.default_rng(5), 300, -132.0)
    gateways, tx, rss, heard, field = not_received.campaign_with_field(np.random.default_rng(5), 300, -132.0)
    for a, b in zip(plain, (gateways, tx, rss, heard), strict=True):
        np.testing.assert_array_equal(a, b)
    # The field is the repeatable part: about 6 dB across transmissions for each gateway.
    assert field.shape == rss.shape and 3.0 < float(np.median(field.std(axis=0))) < 9.0


@pytest.mark.slow
def test_run_scores_every_way_on_the_affected_transmissions(bench: ModuleType) -> None:
    (result,) = bench.run(3, -132.0, [1000.0], samples=900)
    assert 0 < result["affected"] < result["test"]
    for way in bench.WAYS:
        figures = result[way]
        assert 0.0 <= figures["cover_1sigma"] <= figures["cover_2sigma"] <= 1.0
        assert 0.0 < figures["median_m"] < 6000.0
    # Read at its new place with the old place's map, the gateway misleads; a map fitted
    # again on what it hears there does better.
    assert result["unmoved"]["median_m"] < result["kept"]["median_m"]
    assert result["retrained"]["median_m"] < result["kept"]["median_m"]
