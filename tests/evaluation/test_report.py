"""The evaluation report renders every figure and a valid GeoJSON from a tiny run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from heimdall.evaluation.report import FIGURES
from heimdall.pipelines import evaluate, open_context
from heimdall.settings import Settings

pytestmark = pytest.mark.slow


def test_report_files_and_geojson(trained, tmp_path: Path) -> None:
    ctx = open_context(Settings(home=trained.home))
    summary = evaluate(ctx, str(trained.bundle), trained.dataset, "test", report_dir=tmp_path)
    for figure in FIGURES:
        data = (tmp_path / figure).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, figure
    report = (tmp_path / "report.md").read_text()
    assert all(f"]({figure})" in report for figure in FIGURES)
    assert f"{summary['median_error_m']:,.0f} m" in report
    assert "In-sample" not in report and "the per-sample CRLB beside it" in report  # held out; simulated: a CRLB
    collection = json.loads((tmp_path / "predictions.geojson").read_text())
    assert collection["type"] == "FeatureCollection"
    features = collection["features"]
    assert len(features) == 2 * summary["n"]
    for feature in features[:20]:
        assert feature["type"] == "Feature"
        geometry = feature["geometry"]
        if geometry["type"] == "Point":
            lon, lat = geometry["coordinates"]
            assert -180 <= lon <= 180 and -90 <= lat <= 90
        else:
            ring = geometry["coordinates"][0]
            assert geometry["type"] == "Polygon" and ring[0] == ring[-1] and len(ring) >= 4
        assert {"sample_id", "truth_lat", "truth_lon", "error_m"} <= set(feature["properties"])
    assert json.loads((tmp_path / "evaluation.json").read_text())["n"] == summary["n"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report-")]
    page = (tmp_path / "map.html").read_text()
    assert "map.html" in report and 'id="legend"' in page
    assert len(re.findall(r"<title>receiver \S+</title>", page)) >= 3, "receivers are drawn"
    # The worst, median and best cases with ellipses, plus every case behind the switch.
    highlighted = min(summary["n"], 30)
    assert page.count('class="ellipse"') == highlighted
    assert page.count("prediction, sample") == highlighted + summary["n"]


def test_model_card_states_data_training_and_evaluation(trained) -> None:
    card = (trained.bundle / "README.md").read_text()
    assert "dataset: `small` (features)" in card and "simulation: " in card
    training = card.split("## Training", 1)[1].split("##", 1)[0]
    assert "batch_size 128" in training and "epochs 3" in training
    assert f"epochs_run {trained.epochs_run}" in training and trained.mlflow_run_id in training
    assert "hidden_dim 32" in training and "covariance calibrated on the validation split" in training
    assert f"{trained.evaluation['median_error_m']:,.0f} m" in card and "## Limits" in card
