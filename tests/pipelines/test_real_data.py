"""Real measurements end to end: import POWDER, train, export, evaluate with the kNN baseline."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from heimdall.cli import app
from heimdall.export.moved_receivers import TrainingPositions
from heimdall.export.one_receiver import OneReceiverPlaces
from heimdall.geo import ReferencePoint, haversine_m
from heimdall.network import ReceiverNetwork

pytestmark = pytest.mark.slow
POWDER = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "powder-frs-april" / "april.json"


def _json(args: list[str]) -> dict:
    result = CliRunner().invoke(app, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_train_evaluate_powder(home: Path, tmp_path: Path) -> None:
    if not POWDER.is_file():
        pytest.fail(f"POWDER data not found at {POWDER} (shared/ must sit beside the repo)")
    imported = _json(["import-measurements", str(POWDER), "--name", "powder", "--format", "powder-json", "--split-mode", "grid"])
    assert imported["samples"] == 811 and imported["rows_read"] == 8498
    assert imported["rows_dropped"] == {"receiver at (0, 0)": 89, "non-finite rss": 3}
    assert imported["readings_not_received"] == 0  # every POWDER reading is a power
    network = _json(["network", "from-measurements", "powder", "-o", str(tmp_path / "net.yaml")])
    assert ReceiverNetwork.load(tmp_path / "net.yaml").frequency_hz == pytest.approx(462.7e6)
    assert network["receivers"] == 12
    # The default for measured data: the radio map, fitted on train + val, refit on all at export.
    trained = _json(["train", "--dataset", "powder"])
    assert trained["best_checkpoint"].endswith("radio_map.ckpt") and trained["epochs_run"] == 1
    # What its cross-fitting measured comes back with it: places between measured ones are
    # easier than unmeasured blocks, and each wider ellipse holds more truths.
    fit = trained["fit"]
    assert trained["model_kind"] == "radio_map"
    assert fit["train_samples"] == imported["splits"]["train"] + imported["splits"]["val"]
    assert fit["cv_random_median_error_m"] < fit["cv_spatial_median_error_m"]
    for scheme in ("random", "spatial", "time"):  # POWDER has timestamps: the time blocks too
        coverage = [fit[f"cv_{scheme}_coverage_{c}"] for c in ("1sigma", "2sigma", "95")]
        assert coverage[0] < coverage[1] <= coverage[2]
        # Heavy tails: some answers miss by far more than their ellipses say (a Gaussian's ratio is 2).
        assert fit[f"cv_{scheme}_tail_ratio"] > 2.5
    exported = _json(["export", "--checkpoint", trained["best_checkpoint"]])
    bundle = Path(exported["bundle"])
    config = yaml.safe_load((bundle / "config.yaml").read_text())
    assert config["model"]["model_kind"] == "radio_map" and config["fitted_on"] == ["train", "val", "test"]
    # Where a one-receiver transmission may have been: the places each receiver heard at that
    # level. Heard strongly, they lie nearer the receiver than heard weakly (mobile ones aside).
    places = OneReceiverPlaces.from_config(config)
    fixed = TrainingPositions.from_config(config, ReferencePoint(**config["reference_point"]), config["station_ids"])
    nearer = []
    for station, levels in enumerate(places.levels_dbm):
        if len(levels) >= 10 and np.isfinite(fixed.position_m[station]).all():
            distance_m = np.linalg.norm(places.mean_m[station] - fixed.position_m[station], axis=1)
            quarter = len(levels) // 4
            nearer.append(distance_m[-quarter:].mean() < distance_m[:quarter].mean())
    assert len(nearer) >= 8 and np.mean(nearer) >= 0.75, nearer
    held_out = json.loads((bundle / "metrics.json").read_text())["evaluation"]
    assert held_out["n"] == imported["splits"]["test"]
    # Measured before the refit: the test split was unseen. On 43 samples only coarse claims hold.
    assert held_out["median_error_m"] < held_out["baselines"]["weighted_centroid"]["median_error_m"]
    # Grid split: every test transmitter lies in a cell with no training one, so none is at 0 m.
    groups = held_out["by_distance_to_training"]
    assert len(groups) == 3 and sum(g["n"] for g in groups) == held_out["n"]
    assert 0.0 < groups[0]["to_m"] < groups[1]["to_m"] and groups[2]["to_m"] is None
    report = _json(["evaluate", "--model", exported["bundle"], "--dataset", "powder"])
    assert report["n"] == imported["splits"]["test"] and report["in_sample"] is True
    assert set(report["baselines"]) == {"weighted_centroid", "mle_grid", "knn", "ml_offsets"}
    assert "crlb_rmse_m" not in report  # no CRLB for real data
    shown = CliRunner().invoke(app, ["evaluate", "--model", exported["bundle"], "--dataset", "powder",
                                     "--report", str(tmp_path / "report")])
    assert shown.exit_code == 0 and "error by distance to the training data" in shown.stdout, shown.output
    # A shared report says so when its figures are in-sample; measured data has no CRLB.
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "**In-sample:** the deployed model was fitted on this split too" in markdown
    assert "CRLB" not in markdown and "kNN fingerprint" in markdown
    # Metres, on a 3 km campus: every method lands within a few km.
    assert all(b["median_error_m"] < 3_000 for b in report["baselines"].values())
    # The ellipses widen with the time since the nearest training transmission: the bundle
    # keeps the times of every transmission the deployed graph was fitted on.
    amount = config["hyperparameters"]["time_widening"]
    assert amount > 0 and len(set(config["training_times_s"])) == len(config["training_times_s"]) > 700
    _json(["datasets", "export", "powder", "--split", "test", "-o", str(tmp_path / "test.csv")])
    rows = pd.read_csv(tmp_path / "test.csv")
    rows["timestamp"] = (pd.to_datetime(rows["timestamp"]) + pd.Timedelta(days=30)).dt.strftime("%Y-%m-%dT%H:%M:%S")
    rows.to_csv(tmp_path / "later.csv", index=False)
    now = _json(["localize", "--model", exported["bundle"], "--measurements", str(tmp_path / "test.csv"),
                 "--no-tracks"])
    later = _json(["localize", "--model", exported["bundle"], "--measurements", str(tmp_path / "later.csv"),
                   "--no-tracks"])
    # Fitted on every labelled transmission, the test ones included (gap 0); a month later the
    # variance of an answer localised alone is (1 + a) times as large, the answer where it was.
    for a_now, a_later in zip(now["predictions"], later["predictions"], strict=True):
        assert (a_later["lat"], a_later["lon"]) == (a_now["lat"], a_now["lon"])
        assert a_later["sigma_major_m"] == pytest.approx(a_now["sigma_major_m"] * (1.0 + amount) ** 0.5, rel=1e-3)
    # The checkpoint answers as the bundle made from it would (before its refit): `localize
    # --model CHECKPOINT` widens with the time since its training transmissions too.
    checkpoint = {name: _json(["localize", "--model", trained["best_checkpoint"], "--measurements",
                               str(tmp_path / f"{name}.csv"), "--no-tracks"]) for name in ("test", "later")}
    widened = [b["sigma_major_m"] / a["sigma_major_m"]
               for a, b in zip(checkpoint["test"]["predictions"], checkpoint["later"]["predictions"], strict=True)]
    assert min(widened) >= 1.0 and np.median(widened) > 1.05
    # The 95% ellipse: k sigma, k measured by the fit on its cross-fitted truths. The April
    # errors are heavier-tailed than a Gaussian's, so k is well above a Gaussian's 2.45, and
    # the held-out test split (measured before the refit) says how it held.
    k95 = config["hyperparameters"]["ellipse95_sigmas"]
    assert k95 > 2.8
    for answer in later["predictions"]:
        assert answer["ellipse95_major_m"] == pytest.approx(k95 * answer["sigma_major_m"], rel=1e-3)
    assert held_out["coverage_95"] > held_out["coverage_2sigma"] and held_out["tail_ratio"] > 1.0
    # The April transmissions were walked and driven 4 s apart: the fit kept smoothing along
    # tracks, and `localize` smooths a timestamped file by default. A month later each answer
    # is worth less against its neighbours (its ellipse one by one is wider), and the
    # smoothed ellipses widen too.
    track = config["hyperparameters"]["track"]
    assert track["speed_mps"] > 0 and track["covariance_scale"] > 0 and track["disagreement_window_s"] == 60.0
    card = (Path(exported["bundle"]) / "README.md").read_text()
    assert "smoothed along their track" in card and "stray from the track" in card
    tracked_now = _json(["localize", "--model", exported["bundle"], "--measurements", str(tmp_path / "test.csv")])
    tracked_later = _json(["localize", "--model", exported["bundle"], "--measurements", str(tmp_path / "later.csv")])
    sigma = {name: np.median([p["sigma_major_m"] for p in out["predictions"]])
             for name, out in (("now", tracked_now), ("later", tracked_later))}
    assert sigma["later"] > sigma["now"]
    moved_by_tracks = [float(haversine_m(alone["lat"], alone["lon"], a_now["lat"], a_now["lon"]))
                       for alone, a_now in zip(now["predictions"], tracked_now["predictions"], strict=True)]
    assert max(moved_by_tracks) > 1.0
    # Without the drift re-estimate: one pass over readings the map was fitted on (nothing
    # drifted), so the answers move, but little.
    plain = _json(["localize", "--model", exported["bundle"], "--measurements", str(tmp_path / "test.csv"),
                   "--no-drift-correction", "--no-tracks"])
    moved_m = [float(haversine_m(a["lat"], a["lon"], b["lat"], b["lon"]))
               for a, b in zip(now["predictions"], plain["predictions"], strict=True)]
    assert max(moved_m) > 0.0 and float(np.median(moved_m)) < 20.0


def test_bad_import_is_one_line_error(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = CliRunner().invoke(app, ["import-measurements", str(bad), "--name", "x", "--format", "powder-json"])
    assert result.exit_code == 1 and result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1


def test_a_campaign_over_several_days_keeps_each_days_receiver_offsets(home: Path, tmp_path: Path) -> None:
    from heimdall.data.measurement_files import write_measurements
    from heimdall.geo import ReferencePoint, local_to_ground
    from tests.training.test_session_offsets import DAYS, STATIONS, _campaign

    samples, _ = _campaign(400, 4.0, seed=6)
    reference = ReferencePoint(45.0, 9.0)
    lat, lon = local_to_ground(samples.tx_position_m[:, 0], samples.tx_position_m[:, 1], reference)
    samples = replace(samples, tx_lat_deg=np.asarray(lat), tx_lon_deg=np.asarray(lon))
    stations = [f"s{i}" for i in range(STATIONS)]
    write_measurements(tmp_path / "days.csv", samples, reference, stations)
    _json(["import-measurements", str(tmp_path / "days.csv"), "--name", "days", "--split-mode", "random",
           "--frequency-hz", "433e6"])
    trained = _json(["train", "--dataset", "days"])
    exported = _json(["export", "--checkpoint", trained["best_checkpoint"]])
    bundle = Path(exported["bundle"])
    config = yaml.safe_load((bundle / "config.yaml").read_text())
    # Days that retrace each other's places and drift 4 dB: the fit kept one offset per
    # receiver and day, re-estimated on every labelled transmission at the refit.
    hyper = config["hyperparameters"]
    assert len(hyper["session_starts_s"]) == DAYS and np.array(hyper["session_offsets_db"]).shape == (DAYS, STATIONS)
    assert np.sqrt(np.mean(np.square(hyper["session_offsets_db"]))) > 1.0
    assert "receiver offsets per training session: 3 sessions" in (bundle / "README.md").read_text()
    # A query sent within a training day is read with that day's offsets; without a time it is not.
    untimed = samples.select(np.arange(40))
    write_measurements(tmp_path / "untimed.csv", replace(untimed, timestamp_s=None), reference, stations)
    write_measurements(tmp_path / "timed.csv", untimed, reference, stations)
    timed = _json(["localize", "--model", exported["bundle"], "--measurements", str(tmp_path / "timed.csv"),
                   "--no-tracks"])
    plain = _json(["localize", "--model", exported["bundle"], "--measurements", str(tmp_path / "untimed.csv")])
    error = {name: np.median([float(haversine_m(p["lat"], p["lon"], a, b))
                              for p, a, b in zip(out["predictions"], lat[:40], lon[:40], strict=True)])
             for name, out in (("timed", timed), ("plain", plain))}
    assert error["timed"] < error["plain"]
