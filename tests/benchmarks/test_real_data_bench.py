"""benchmarks/real_data.py: the classical-only path on a tiny long-format file."""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from heimdall.geo import ReferencePoint, local_to_ground

REFERENCE = ReferencePoint(40.76, -111.84)
STATIONS_M = np.array([[0, 0], [1500, 0], [0, 1500], [1500, 1500], [750, -300], [-300, 750]], float)


@pytest.fixture(scope="module")
def bench(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    return load_benchmark("real_data")


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


def test_a_wide_table_with_its_receivers_scores_as_the_long_file(bench: ModuleType, tmp_path: Path) -> None:
    long_path, wide_path, receivers = tmp_path / "tiny.csv", tmp_path / "wide.csv", tmp_path / "rx.csv"
    _tiny_long_csv(long_path, 90)
    rows = pd.read_csv(long_path)
    rows.groupby("receiver_id")[["rx_lat", "rx_lon"]].first().reset_index().to_csv(receivers, index=False)
    wide = rows.pivot(index="sample_id", columns="receiver_id", values="rss_dbm")
    truth = rows.groupby("sample_id")[["timestamp", "tx_lat", "tx_lon"]].first()
    wide = truth.join(wide).loc[rows["sample_id"].unique()]  # the long file's order of transmissions
    wide.reset_index().to_csv(wide_path, index=False)
    results = []
    for args in ([str(long_path)], [str(wide_path), "--receivers", str(receivers)]):
        out = tmp_path / f"r{len(results)}.json"
        assert bench.main([*args, "--folds", "3", "--seeds", "0", "--methods", "knn,ml_offsets",
                           "--json", str(out)]) == 0
        results.append(json.loads(out.read_text()))
    def scores(result: dict[str, Any]) -> dict[tuple[str, str], tuple[float, float]]:
        return {(mode, name): (m["median_m"]["mean"], m["p90_m"]["mean"])
                for mode, summary in result["summary"].items() for name, m in summary["methods"].items()}

    assert scores(results[0]) == scores(results[1]) and len(scores(results[0])) == 6
    assert results[1]["config"]["receivers"] == str(receivers)
    assert bench.main([str(wide_path), "--format", "powder-json", "--receivers", str(receivers)]) == 2


def test_model_rows_are_scored_paired_and_trained_once_per_time_fold(
    bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "tiny.csv"
    _tiny_long_csv(source, 90)
    campaign = bench.load_campaign(source, "long")
    test_csv = tmp_path / "test.csv"
    bench.write_long_csv(campaign, {"s0", "s1"}, test_csv, with_truth=False)
    written = pd.read_csv(test_csv)
    assert set(written.sample_id) == {"s0", "s1"} and "tx_lat" not in written and "tx_lon" not in written
    assert "timestamp" in written

    trained: list[int] = []

    def fake_model_fold(campaign: Any, train_index: np.ndarray, test_index: np.ndarray) -> dict[str, Any]:
        """Stands in for the CLI: 11 m north of the truth, inside a 20 m north-south 1-sigma ellipse."""
        trained.append(len(train_index))
        n = len(test_index)
        return {"lat": campaign.samples.tx_lat_deg[test_index] + 1e-4, "lon": campaign.samples.tx_lon_deg[test_index],
                "train_s": 2.0, "ellipse": {"sigma_major_m": np.full(n, 20.0), "sigma_minor_m": np.full(n, 5.0),
                                            "orientation_deg": np.zeros(n)}}

    monkeypatch.setattr(bench, "model_fold", fake_model_fold)
    result = bench.run(campaign, ("random", "time"), 3, (0, 1), ("model", "centroid"))
    assert len(trained) == 3 * 2 + 3  # random: every seed's folds; time: once per fold
    for mode in ("random", "time"):
        model = result["summary"][mode]["methods"]["model"]
        assert model["median_m"]["mean"] == pytest.approx(11.1, abs=0.2)
        assert model["coverage_1sigma"]["mean"] == 1.0 and model["train_s"]["mean"] == 2.0
        # Every answer misses by the same share of its ellipse: no tail at all, and any width reaches 1.0.
        assert model["tail_ratio"]["mean"] == pytest.approx(1.0, abs=0.01)
        assert model["reachable_coverage_2sigma"]["mean"] == pytest.approx(1.0)
        paired = result["summary"][mode]["paired_difference_m"]
        centroid = result["summary"][mode]["methods"]["centroid"]["median_m"]["mean"]
        assert paired["best_classical"] == "centroid"
        assert paired["mean"] == pytest.approx(model["median_m"]["mean"] - centroid)
    table = bench.markdown(result)
    assert "model - centroid (paired)" in table and "| tail ratio | reachable 2-sigma |" in table
    assert re.search(r"\| random \| model \| 6 \| .* \| 1\.00 ± 0\.00 \| 1\.000 ± 0\.000 \| 2\.00 ± 0\.00 \|", table)


def test_an_infinite_fold_figure_summarises_without_a_warning(load_benchmark: Callable[[str], ModuleType]) -> None:
    report = load_benchmark("real_data_report")
    # kNN leaves transmissions that share too few receivers unplaced: its p90 can be inf.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = report.mean_sd([120.0, float("inf")])
    assert summary["mean"] == float("inf") and math.isnan(summary["sd"])
    assert report.mean_sd([1.0, 3.0]) == {"mean": 2.0, "sd": pytest.approx(math.sqrt(2.0))}


def test_test_drift_shifts_each_receiver_of_the_test_rows_alike_and_nothing_else(bench: ModuleType, tmp_path: Path) -> None:
    source = tmp_path / "tiny.csv"
    _tiny_long_csv(source, 40)
    campaign = bench.load_campaign(source, "long")
    test_index = np.arange(10, 20)
    shifted = bench.drifted(campaign, test_index, 4.0, np.random.default_rng(0))
    change = shifted.samples.rss_dbm - campaign.samples.rss_dbm
    heard = campaign.samples.heard
    others = np.setdiff1d(np.arange(len(campaign.samples)), test_index)
    assert np.all(change[others][heard[others]] == 0.0)
    # One offset per receiver, the same in every test row, the size of the drift asked for.
    per_station = {int(s): set(np.round(change[test_index][campaign.samples.rx_id[test_index] == s], 9))
                   for s in range(campaign.num_stations)}
    assert all(len(values) == 1 for values in per_station.values())
    offsets = np.array([next(iter(v)) for v in per_station.values()])
    assert np.all(offsets != 0.0) and 1.0 < np.std(offsets) < 10.0
    # The CLI's files are written from the table: its test rows carry the same shift.
    test_csv, before_csv = tmp_path / "test.csv", tmp_path / "before.csv"
    names = {campaign.names[i] for i in test_index}
    bench.write_long_csv(shifted, names, test_csv, with_truth=False)
    bench.write_long_csv(campaign, names, before_csv, with_truth=False)
    moved = pd.read_csv(test_csv).rss_dbm - pd.read_csv(before_csv).rss_dbm
    receiver = pd.read_csv(test_csv).receiver_id.map({name: i for i, name in enumerate(campaign.station_ids)})
    np.testing.assert_allclose(moved, offsets[receiver.to_numpy()], atol=1e-4)  # samples hold float32


def test_the_drifted_run_reports_its_drift_and_rejects_a_negative_one(bench: ModuleType, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "tiny.csv"
    _tiny_long_csv(source, 60)
    out = tmp_path / "drift.json"
    assert bench.main([str(source), "--folds", "3", "--seeds", "0", "--modes", "random", "--methods", "ml_offsets",
                       "--test-drift-db", "6", "--json", str(out)]) == 0
    drifted = json.loads(out.read_text())
    assert drifted["config"]["test_drift_db"] == 6.0 and all(f["test_drift_db"] == 6.0 for f in drifted["folds"])
    assert bench.main([str(source), "--folds", "3", "--seeds", "0", "--modes", "random", "--methods", "ml_offsets",
                       "--json", str(out)]) == 0
    plain = json.loads(out.read_text())
    # ML with the offsets fitted on training loses accuracy when the receivers drift.
    assert drifted["summary"]["random"]["methods"]["ml_offsets"]["median_m"]["mean"] > \
        plain["summary"]["random"]["methods"]["ml_offsets"]["median_m"]["mean"]
    assert bench.main([str(source), "--test-drift-db", "-1"]) == 2
    assert "--test-drift-db must be" in capsys.readouterr().err


def test_sessions_are_the_time_blocks_a_day_apart_each_with_its_own_receiver_offsets(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "tiny.csv"
    _tiny_long_csv(source, 60)
    campaign = bench.load_campaign(source, "long")
    sessions = bench.in_sessions(campaign, 3, 4.0, np.random.default_rng(0))
    block = bench.make_folds("time", 3, 0, campaign.samples.tx_position_m, campaign.timestamps)
    days = (sessions.samples.timestamp_s - campaign.samples.timestamp_s) / 86400.0
    np.testing.assert_allclose(days, block)
    np.testing.assert_array_equal((sessions.timestamps - campaign.timestamps).astype("timedelta64[D]").astype(int), block)
    change = sessions.samples.rss_dbm - campaign.samples.rss_dbm
    offsets = np.zeros((3, campaign.num_stations))
    for b in range(3):
        for s in range(campaign.num_stations):
            values = np.unique(np.round(change[block == b][campaign.samples.rx_id[block == b] == s], 4))
            assert len(values) == 1  # one offset per (session, receiver)
            offsets[b, s] = values[0]
    assert 1.0 < np.std(offsets) < 10.0 and len(np.unique(offsets.round(4))) == offsets.size
    # The CLI's files carry the moved times and shifted readings too.
    out = tmp_path / "sessions.csv"
    bench.write_long_csv(sessions, set(campaign.names), out, with_truth=False)
    frame = pd.read_csv(out)
    assert frame.timestamp.str[:10].nunique() == 3
    assert bench.main([str(source), "--session-drift-db", "nan"]) == 2
    assert "--session-drift-db must be" in capsys.readouterr().err
