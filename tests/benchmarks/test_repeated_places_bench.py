"""benchmarks/repeated_places.py: the simulated city where kNN finds places heard again."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np

from heimdall.evaluation.knn import fit_knn


def test_places_heard_again_are_found_exactly_by_knn(load_benchmark: Callable[[str], ModuleType]) -> None:
    bench = load_benchmark("repeated_places")
    samples = bench.campaign(np.random.default_rng(0), places=60, per_place=4, roaming=40)
    assert len(samples) == 60 * 4 + 40
    assert len(np.unique(samples.tx_position_m[:240], axis=0)) == 60
    # The file lists only the gateways that heard, and every transmission was heard.
    assert np.array_equal(samples.present, samples.heard) and samples.heard.any(axis=1).all()
    assert np.all(np.isnan(samples.rss_dbm[~samples.heard]))
    # A fourth transmission from each place, predicted from the other three: kNN (k=1) lands on
    # it, where it can compare anything (three gateways heard at least).
    again = np.arange(3, 240, 4)
    train = samples.select(np.setdiff1d(np.arange(len(samples)), again))
    test = samples.select(again)
    error_m = np.linalg.norm(fit_knn(train, bench.GATEWAYS).predict(test, 1) - test.tx_position_m, axis=1)
    assert np.mean(error_m < 1.0) > 0.5
