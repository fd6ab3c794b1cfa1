"""benchmarks/real_data.py: its folds, its scoring and the classical-only path on a tiny file."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from heimdall.errors import InputError
from heimdall.geo import ReferencePoint, local_to_ground

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "real_data.py"
REFERENCE = ReferencePoint(40.76, -111.84)
STATIONS_M = np.array([[0, 0], [1500, 0], [0, 1500], [1500, 1500], [750, -300], [-300, 750]], float)


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("real_data_bench", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _positions(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    tx = rng.uniform(0.0, 1500.0, size=(n, 2))
    times = np.datetime64("2022-04-25T14:00:00") + rng.integers(0, 3600, size=n).astype("timedelta64[s]")
    times[:10] = times[10]  # a run of equal timestamps must not be split
    return tx, times


@pytest.mark.parametrize("mode", ["random", "grid", "time"])
def test_every_sample_is_tested_exactly_once_per_seed(bench: ModuleType, mode: str) -> None:
    tx, times = _positions(400, 0)
    for seed in (0, 1):
        fold = bench.make_folds(mode, 5, seed, tx, times)
        assert fold.shape == (400,) and set(np.unique(fold)) == set(range(5))
        # One fold index per sample: tested in exactly one fold, trained on in the other four.
        assert np.bincount(fold).sum() == 400 and np.bincount(fold).min() > 0


def test_grid_folds_share_no_cell_and_differ_by_seed(bench: ModuleType) -> None:
    tx, _ = _positions(600, 1)
    from heimdall.data.measured import default_cell_size_m

    cell = [tuple(c) for c in np.floor((tx - tx.min(axis=0)) / default_cell_size_m(tx)).astype(int)]
    folds = {seed: bench.make_folds("grid", 5, seed, tx) for seed in (0, 1)}
    for fold in folds.values():
        fold_of_cell: dict[tuple[int, ...], set[int]] = {}
        for c, f in zip(cell, fold, strict=True):
            fold_of_cell.setdefault(c, set()).add(int(f))
        assert all(len(f) == 1 for f in fold_of_cell.values())
        assert np.bincount(fold).max() < 2 * np.bincount(fold).min()  # dealt to balance samples
    assert not np.array_equal(folds[0], folds[1])


def test_time_folds_are_contiguous_blocks(bench: ModuleType) -> None:
    tx, times = _positions(300, 2)
    fold = bench.make_folds("time", 5, 0, tx, times)
    for f in range(4):
        assert times[fold == f].max() < times[fold == f + 1].min()
    np.testing.assert_array_equal(fold, bench.make_folds("time", 5, 7, tx, times))
    with pytest.raises(InputError, match="timestamp"):
        bench.make_folds("time", 5, 0, tx, np.full(300, np.datetime64("NaT"), dtype="datetime64[s]"))
    with pytest.raises(InputError, match="folds"):
        bench.make_folds("random", 1, 0, tx)


def test_score_counts_errors_and_ellipse_coverage(bench: ModuleType) -> None:
    truth_lat, truth_lon = local_to_ground(np.zeros(4), np.zeros(4), REFERENCE)
    # Predictions 100 m north of the truth: one ellipse reaches it at 1 sigma, one more at 2 sigma.
    lat, lon = local_to_ground(np.zeros(4), np.full(4, 100.0), REFERENCE)
    ellipse = {
        "sigma_major_m": np.array([150.0, 60.0, 300.0, 40.0]),
        "sigma_minor_m": np.array([10.0, 10.0, 40.0, 10.0]),
        "orientation_deg": np.array([0.0, 180.0, 90.0, 0.0]),  # north-south, north-south, east-west, north-south
    }
    result = bench.score(np.asarray(truth_lat), np.asarray(truth_lon), np.asarray(lat), np.asarray(lon), ellipse)
    assert result["median_m"] == pytest.approx(100.0, abs=0.5)
    assert result["coverage_1sigma"] == pytest.approx(0.25)  # only the 150 m north-south ellipse
    assert result["coverage_2sigma"] == pytest.approx(0.5)  # and the 60 m one (100 m < 120 m)
    lat = np.asarray(lat).copy()
    lat[0] = np.nan
    assert bench.score(np.asarray(truth_lat), np.asarray(truth_lon), lat, np.asarray(lon))["unplaced"] == 1


def _tiny_long_csv(path: Path, n: int) -> None:
    """Log-distance RSS with station offsets and a per-transmission power, long format."""
    rng = np.random.default_rng(3)
    tx = rng.uniform(0.0, 1500.0, size=(n, 2))
    offsets_db = rng.normal(0.0, 5.0, len(STATIONS_M))
    rows = []
    tx_lat, tx_lon = local_to_ground(tx[:, 0], tx[:, 1], REFERENCE)
    rx_lat, rx_lon = local_to_ground(STATIONS_M[:, 0], STATIONS_M[:, 1], REFERENCE)
    for i in range(n):
        power_db = rng.uniform(-10, 10)
        for s in range(len(STATIONS_M)):
            distance_m = max(float(np.linalg.norm(tx[i] - STATIONS_M[s])), 1.0)
            rss = power_db + offsets_db[s] - 30.0 * np.log10(distance_m) + rng.normal(0.0, 2.0)
            rows.append({
                "sample_id": f"s{i}", "timestamp": f"2022-04-25T14:{i // 60:02d}:{i % 60:02d}", "receiver_id": f"rx{s}",
                "rx_lat": rx_lat[s], "rx_lon": rx_lon[s], "rss_dbm": rss, "tx_lat": tx_lat[i], "tx_lon": tx_lon[i],
            })
    pd.DataFrame(rows).to_csv(path, index=False)


def test_classical_only_run_on_a_tiny_long_file(bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "tiny.csv"
    _tiny_long_csv(source, 150)
    out = tmp_path / "result.json"
    code = bench.main([str(source), "--folds", "3", "--seeds", "0,1", "--methods", "knn,ml_offsets,centroid",
                       "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert len(result["folds"]) == 3 * 3 * 2  # modes x folds x seeds
    for mode in ("random", "grid", "time"):
        per_seed = {}
        for f in (f for f in result["folds"] if f["mode"] == mode):
            per_seed[f["seed"]] = per_seed.get(f["seed"], 0) + f["n_test"]
        assert per_seed == {0: 150, 1: 150}
        methods = result["summary"][mode]["methods"]
        assert methods["knn"]["folds"] == 6
        # Data drawn from the offsets model: it beats the centroid, which ignores distance.
        assert methods["ml_offsets"]["median_m"]["mean"] < methods["centroid"]["median_m"]["mean"]
        assert methods["ml_offsets"]["median_m"]["mean"] < 150.0
        assert "paired_difference_m" not in result["summary"][mode]  # no model was run
    table = capsys.readouterr().out
    assert "| random | ml_offsets | 6 |" in table
    assert bench.main([str(source), "--methods", "knn,bogus"]) == 2
    assert "error: unknown value(s) bogus" in capsys.readouterr().err
