"""benchmarks/error_by_distance.py: rows binned by the truth's distance to the training set."""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    return load_benchmark("error_by_distance")


def test_bins_report_error_sigma_and_coverage_per_distance(bench: ModuleType) -> None:
    rng = np.random.default_rng(0)
    n = 4000
    distance = rng.uniform(0.0, 60.0, n)
    near = distance < 20.0
    sigma = np.full(n, 50.0)
    # Calibrated far from the training set, errors a quarter of the sigma near it.
    offset = rng.normal(size=(n, 2)) * np.where(near, 12.5, 50.0)[:, None]
    m2 = (offset**2).sum(1) / sigma**2
    rows = bench.bin_rows(distance, np.linalg.norm(offset, axis=1), sigma, m2, (20.0, 40.0, 100.0))
    assert [r["from_m"] for r in rows] == [0.0, 20.0, 40.0]  # the empty last bin is left out
    assert sum(r["n"] for r in rows) == n
    first, *far = rows
    assert first["coverage_1sigma"] > 0.95
    assert first["median_error_m"] == pytest.approx(12.5 * math.sqrt(2 * math.log(2)), rel=0.1)  # Rayleigh median
    for row in far:
        assert row["coverage_1sigma"] == pytest.approx(1 - math.exp(-0.5), abs=0.04)
        assert row["coverage_2sigma"] == pytest.approx(1 - math.exp(-2.0), abs=0.03)
        assert row["median_sigma_m"] == 50.0
