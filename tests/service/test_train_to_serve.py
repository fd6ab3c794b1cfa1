"""A training job is done when its model can serve: generate -> train -> localise over HTTP,
with no export call, and the completed job names the model it registered."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from heimdall.jobs import repository as jobs
from heimdall.jobs import runner as jobrunner
from heimdall.errors import DataError
from heimdall.pipelines import Context
from heimdall.jobs.queue import describe_job, run_job
from heimdall.requests import TrainRequest
from heimdall.service import create_app
from heimdall.service.browser import SCRIPT_HEADERS
from heimdall.settings import Settings


def _trained_job(ctx: Context, tmp_path: Path) -> str:
    """A training job row whose epochs are done (its result names a checkpoint)."""
    checkpoint = tmp_path / "best.ckpt"
    checkpoint.write_bytes(b"")
    params = {"spec": TrainRequest(dataset="a", epochs=2).to_json(), "executor": "inline",
              "result": {"best_checkpoint": str(checkpoint), "checkpoint": str(checkpoint), "epochs_run": 2}}
    return jobs.create_job(ctx.db, "train", "a", params, total_epochs=2)


def test_a_failed_export_stage_fails_the_training_job(ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_ctx, job, _stop) -> None:
        raise DataError("the test split is empty")

    monkeypatch.setitem(jobrunner._RUNNERS, "export", broken)
    job_id = _trained_job(ctx, tmp_path)
    # Its epochs are done: a resumed job (a server that stopped during the export stage)
    # only exports, it does not train again (the dataset "a" does not even exist).
    assert run_job(ctx, job_id) == "failed"
    view = describe_job(ctx, job_id)
    assert view["error"] == "export failed: the test split is empty" and view["model"] is None
    assert view["stages"]["train"]["status"] == "completed" and view["stages"]["export"]["status"] == "failed"


@pytest.mark.slow
def test_a_completed_training_job_serves_at_once(embedded_env: Path, wait_job, transmission) -> None:
    with TestClient(create_app(Settings()), headers=SCRIPT_HEADERS) as client:
        # A frequency of its own: the network travels in the job's request, not in a file
        # the job writes for itself.
        generated = client.post(
            "/v1/training/synthetic/generate", json={"name": "serve", "num_samples": 1500, "seed": 3, "frequency_mhz": 433.0}
        )
        wait_job(client, generated.json()["job_id"], {"completed"})
        assert not (embedded_env / "jobs").exists()
        assert client.get("/v1/training/synthetic/datasets/serve").json()["network"]["frequency_hz"] == 433e6

        body = {"dataset": "serve", "epochs": 2, "batch_size": 256, "hidden_dim": 16, "num_layers": 1}
        job_id = client.post("/v1/training/jobs", json=body).json()["job_id"]
        running = wait_job(client, job_id, {"running"})
        assert running["stages"]["train"]["total"] == 2 and running["model"] is None
        # The first answer that says completed already names a model that serves.
        job = wait_job(client, job_id, {"completed"})
        located = client.post("/v1/localize", json={"measurements": transmission()})
        assert located.status_code == 200, located.text
        assert job["model"] == {"name": "heimdall-localizer", "version": 1, "reference": "models:/heimdall-localizer/1"}
        assert located.json()["model"] == job["result"]["model"] == "models:/heimdall-localizer/1"
        evaluation = job["result"]["evaluation"]
        assert evaluation["n"] > 0 and evaluation["median_error_m"] > 0 and evaluation["split"] == "test"
        # Its stages, each with its own progress: the epochs, then the export.
        assert job["progress"]["current"] == 2 and job["stages"]["train"] == {"status": "completed", "current": 2, "total": 2}
        export = job["stages"]["export"]
        assert export["status"] == "completed" and (export["current"], export["total"]) == (1, 1)
        assert export["job_id"] == job["export_job_id"]
        # The job row holds the request as it was sent (defaults filled in), read back as is.
        assert job["params"]["epochs"] == 2 and job["params"]["hidden_dim"] == 16 and job["params"]["export"] is True
