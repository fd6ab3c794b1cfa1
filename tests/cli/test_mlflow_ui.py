"""`heimdall ui` serves the MLflow UI over the runs and registry of the current HEIMDALL_HOME."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from heimdall.settings import Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ui_shows_this_homes_runs_and_registry(home: Path, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = Settings().resolved_mlflow_tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment_id = client.create_experiment("ui-probe", artifact_location=(home / "mlruns").as_uri())
    run = client.create_run(experiment_id, run_name="probe-run")
    client.log_metric(run.info.run_id, "val_median_error_m", 1234.0)
    client.create_registered_model("ui-probe-model")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    stdout, stderr = tmp_path / "ui.out", tmp_path / "ui.err"
    with stdout.open("w") as out, stderr.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-c", "from heimdall.cli import app; app()", "ui", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        landing = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                landing = httpx.get(base + "/", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.5)
        assert landing is not None, f"the UI did not answer: {stderr.read_text()[-2000:]}"
        # The full mlflow ships the UI's static build; mlflow-skinny answers "landing page not found".
        assert landing.status_code == 200 and "<html" in landing.text.lower(), landing.text[:300]
        assert "landing page not found" not in landing.text.lower()
        experiments = httpx.post(base + "/ajax-api/2.0/mlflow/experiments/search", json={"max_results": 100}, timeout=10).json()
        assert "ui-probe" in {e["name"] for e in experiments["experiments"]}
        runs = httpx.post(base + "/ajax-api/2.0/mlflow/runs/search", json={"experiment_ids": [experiment_id]}, timeout=10).json()
        assert [r["info"]["run_id"] for r in runs["runs"]] == [run.info.run_id]
        models = httpx.get(base + "/ajax-api/2.0/mlflow/registered-models/search", timeout=10).json()
        assert "ui-probe-model" in {m["name"] for m in models["registered_models"]}
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    out = stdout.read_text()
    assert f"{base}\n" in out and f"{uri}\n" in out, out


def test_ui_without_the_extra_is_one_line(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from heimdall import extras
    from heimdall.cli import app

    monkeypatch.setattr(extras, "_installed", lambda name: name != "flask")
    result = CliRunner().invoke(app, ["ui"])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith("error: heimdall ui") and "heimdall[ui]" in lines[0]
