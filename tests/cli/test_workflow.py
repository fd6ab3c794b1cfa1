"""The whole job through the CLI on a small dataset: train, resume, export, evaluate, localise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from heimdall.cli import app
from heimdall.export.bundle import read_bundle_config
from heimdall.export.localizer import Localizer
from heimdall.jobs.repository import get_job, job_metrics
from heimdall.pipelines import open_context
from heimdall.settings import Settings

pytestmark = pytest.mark.slow
runner = CliRunner()


def _json(args: list[str]) -> dict:
    result = runner.invoke(app, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_resume_continues_epochs_and_the_mlflow_run(home: Path) -> None:
    _json(["generate", "--name", "r", "--samples", "1500", "--seed", "1"])
    first = _json(["train", "--dataset", "r", "--epochs", "2", "--batch-size", "256"])
    assert first["epochs_run"] == 2
    second = _json(["train", "--checkpoint", first["checkpoint"], "--resume-training", "--epochs", "4"])
    assert second["epochs_run"] == 2  # epochs 2 and 3, not 0-3
    assert second["mlflow_run_id"] == first["mlflow_run_id"]
    assert second["job_id"] == first["job_id"]
    ctx = open_context(Settings())
    assert [m.epoch for m in job_metrics(ctx.db, first["job_id"])] == [0, 1, 2, 3]
    assert get_job(ctx.db, first["job_id"]).status == "completed"
    history = ctx.tracker.client.get_metric_history(first["mlflow_run_id"], "val_loss")
    assert len(history) == 4


def test_export_writes_one_file_bundle_with_parity(trained) -> None:
    files = sorted(p.name for p in trained.bundle.iterdir())
    assert files == ["README.md", "config.yaml", "metrics.json", "model.onnx"]
    model = onnx.load(str(trained.bundle / "model.onnx"))
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert isinstance(dims[0], str) and isinstance(dims[1], str)  # dynamic batch and receivers
    assert trained.max_abs_diff < 0.5
    metrics = json.loads((trained.bundle / "metrics.json").read_text())
    assert metrics["evaluation"]["n"] == trained.evaluation["n"]
    card = (trained.bundle / "README.md").read_text()
    assert "mle_grid" in card and "Limits" in card


def test_evaluate_reports_the_design_fields(trained, monkeypatch) -> None:
    monkeypatch.setenv("HEIMDALL_HOME", str(trained.home))
    report = _json(["evaluate", "--model", str(trained.bundle), "--dataset", trained.dataset])
    for key in (
        "n", "median_error_m", "mean_error_m", "rmse_m", "p90_error_m", "p95_error_m",
        "accuracy_at_m", "coverage_1sigma", "coverage_2sigma", "baselines", "crlb_rmse_m",
    ):
        assert key in report, key
    for name in ("weighted_centroid", "mle_grid", "oracle_ml"):
        assert report["baselines"][name]["n"] == report["n"]
    # The oracle knows the terrain field: on the network's own physics it beats plain grid ML.
    assert report["baselines"]["oracle_ml"]["median_error_m"] < report["baselines"]["mle_grid"]["median_error_m"]
    assert {"30", "50", "100"} <= set(report["accuracy_at_m"])
    assert report["p90_error_m"] >= report["median_error_m"] > 0
    # Same samples, same numbers as the evaluation stored at export time.
    assert report["median_error_m"] == pytest.approx(trained.evaluation["median_error_m"])


def test_localize_json_and_geojson_agree_with_evaluation(trained, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HEIMDALL_HOME", str(trained.home))
    csv = tmp_path / "test.csv"
    exported = _json(["datasets", "export", trained.dataset, "--split", "test", "-o", str(csv)])
    assert exported["samples"] == trained.evaluation["n"]
    result = _json(["localize", "--model", str(trained.bundle), "--measurements", str(csv)])
    predictions = result["predictions"]
    assert len(predictions) == exported["samples"]
    first = predictions[0]
    assert set(first) == {"sample_id", "lat", "lon", "sigma_major_m", "sigma_minor_m", "orientation_deg", "n_receivers_heard",
                          "out_of_area", "warnings", "ellipse95_major_m", "ellipse95_minor_m"}
    assert all(p["sigma_major_m"] >= p["sigma_minor_m"] > 0 and 0 <= p["orientation_deg"] < 180 for p in predictions)
    # The 95% ellipse is the 1-sigma one times the k measured on the validation split at export.
    k95 = read_bundle_config(trained.bundle)["ellipse95_sigmas"]
    assert 2.0 < k95 < 6.0
    np.testing.assert_allclose([p["ellipse95_major_m"] / p["sigma_major_m"] for p in predictions], k95, rtol=1e-3)
    assert trained.evaluation["coverage_95"] >= trained.evaluation["coverage_2sigma"]
    # Errors computed from the CSV's truth reproduce the evaluation's median.
    import pandas as pd

    from heimdall.geo import haversine_m

    truth = pd.read_csv(csv).groupby("sample_id")[["tx_lat", "tx_lon"]].first()
    ids = [int(p["sample_id"]) for p in predictions]
    errors = haversine_m(truth.loc[ids, "tx_lat"], truth.loc[ids, "tx_lon"],
                         np.array([p["lat"] for p in predictions]), np.array([p["lon"] for p in predictions]))
    assert np.median(errors) == pytest.approx(trained.evaluation["median_error_m"], rel=1e-3)
    result = runner.invoke(app, ["localize", "--model", str(trained.bundle), "--measurements", str(csv), "--geojson"])
    collection = json.loads(result.stdout.strip().splitlines()[-1])
    assert collection["type"] == "FeatureCollection"
    kinds = [f["geometry"]["type"] for f in collection["features"]]
    assert kinds.count("Point") == kinds.count("Polygon") == len(predictions)
    ring = collection["features"][1]["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1]


def test_registry_and_models_table(trained) -> None:
    settings = Settings(home=trained.home)
    for reference in ("models:/heimdall-localizer/1", "models:/heimdall-localizer@latest", "models:/heimdall-localizer/latest"):
        localizer = Localizer.from_registry(reference, settings)
        assert localizer.config["version"] == 1
    ctx = open_context(settings)
    ctx.tracker.set_alias("heimdall-localizer", 1, "production")
    assert Localizer.from_registry("models:/heimdall-localizer@production", settings).config["dataset"] == trained.dataset
    from sqlalchemy import select

    from heimdall.storage.tables import ModelRecord

    with ctx.db.session() as session:
        row = session.scalars(select(ModelRecord)).one()
    assert row.version == 1 and row.mlflow_run_id == trained.mlflow_run_id and row.dataset_name == trained.dataset


def test_evaluate_from_a_checkpoint_matches_its_export(trained, monkeypatch) -> None:
    monkeypatch.setenv("HEIMDALL_HOME", str(trained.home))
    report = _json(["evaluate", "--model", str(trained.checkpoint), "--dataset", trained.dataset])
    # Same weights; the bundle adds only the variance calibration, so positions agree.
    assert report["median_error_m"] == pytest.approx(trained.evaluation["median_error_m"], rel=1e-3)


def test_models_list_and_promote(trained, monkeypatch) -> None:
    monkeypatch.setenv("HEIMDALL_HOME", str(trained.home))
    listed = _json(["models", "list"])
    assert [m["reference"] for m in listed["models"]] == ["models:/heimdall-localizer/1"]
    promoted = _json(["models", "promote", "heimdall-localizer", "1", "--alias", "qa"])
    assert promoted["reference"] == "models:/heimdall-localizer@qa"
    assert "qa" in _json(["models", "list"])["models"][0]["aliases"]
    result = runner.invoke(app, ["models", "promote", "heimdall-localizer", "9"])
    assert result.exit_code == 1 and "not found" in result.stderr
