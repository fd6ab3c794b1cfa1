"""`heimdall demo` end to end at a small size: every stage runs and reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from heimdall.cli import app

pytestmark = pytest.mark.slow


def test_demo_small(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = CliRunner().invoke(
        app, ["demo", "--samples", "1500", "--epochs", "2", "--out", str(out), "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(payload) >= {"dataset", "model", "mlflow_run_id", "evaluation", "seconds"}
    assert payload["evaluation"]["n"] > 0 and "mle_grid" in payload["evaluation"]["baselines"]
    assert Path(payload["model"], "model.onnx").is_file()
    localized = json.loads((out / "localize.json").read_text())
    assert len(localized["predictions"]) == payload["evaluation"]["n"]
    assert (out / "fresh-seed-evaluation.json").is_file()
    oracle = payload["evaluation"]["baselines"]["oracle_ml"]["median_error_m"]
    assert payload["model_to_oracle_median_ratio"] == pytest.approx(payload["evaluation"]["median_error_m"] / oracle, rel=1e-2)
    # Human output: the comparison table names the model, the baselines and the bound.
    human = CliRunner().invoke(app, ["demo", "--samples", "1000", "--epochs", "1"], catch_exceptions=False)
    assert human.exit_code == 0, human.output
    for word in ("model", "mle_grid", "weighted_centroid", "oracle_ml", "model / oracle", "CRLB", "model bundle", "MLflow store"):
        assert word in human.stdout
