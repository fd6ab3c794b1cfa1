"""The whole job over HTTP in embedded mode: generate -> train -> pause -> resume -> complete
-> export -> promote -> localise, with a token on every request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from heimdall.service import create_app
from heimdall.settings import Settings
from heimdall.service.browser import SCRIPT_HEADERS

pytestmark = pytest.mark.slow

TOKEN = "workflow-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _model(client: TestClient, wait_job, job_id: str) -> dict:
    """The model a completed training job was exported to (waits for its export job)."""
    job = client.get(f"/v1/training/jobs/{job_id}").json()
    for _ in range(100):
        if job["export_job_id"]:
            break
        job = wait_job(client, job_id, {"completed"})
    export = wait_job(client, job["export_job_id"], {"completed"})
    assert export["kind"] == "export" and export["result"]["max_abs_diff"] < 0.5
    job = client.get(f"/v1/training/jobs/{job_id}").json()
    assert job["model"] is not None
    return job["model"]


def test_generate_train_pause_resume_promote_localize(embedded_env: Path, monkeypatch: pytest.MonkeyPatch, wait_job, transmission) -> None:
    monkeypatch.setenv("HEIMDALL_API_TOKEN", TOKEN)
    with TestClient(create_app(Settings()), headers=AUTH) as client:
        generated = client.post("/v1/training/synthetic/generate", json={"name": "flow", "num_samples": 1500, "seed": 1})
        assert generated.status_code == 202
        wait_job(client, generated.json()["job_id"], {"completed"})

        body = {"dataset": "flow", "epochs": 8, "batch_size": 256, "hidden_dim": 32, "num_layers": 1}
        submitted = client.post("/v1/training/jobs", json=body)
        assert submitted.status_code == 202
        job_id = submitted.json()["job_id"]
        wait_job(client, job_id, {"running"})
        paused_request = client.post(f"/v1/training/jobs/{job_id}/pause")
        assert paused_request.status_code == 202 and paused_request.json()["pause_requested"]
        paused = wait_job(client, job_id, {"paused"})
        epochs_before = paused["progress"]["current"]
        assert 1 <= epochs_before < 8, paused["progress"]
        assert paused["metrics"]["epoch"] == epochs_before - 1 and paused["metrics"]["val_loss"] > 0
        assert client.post("/v1/localize", json={"measurements": transmission()}).status_code == 404

        resumed = client.post(f"/v1/training/jobs/{job_id}/resume")
        assert resumed.status_code == 202 and resumed.json()["status"] in ("queued", "running")
        with client.stream("GET", f"/v1/training/jobs/{job_id}/events", params={"interval_s": 0.2}) as stream:
            text = "".join(stream.iter_text())
        events = [line.removeprefix("event: ") for line in text.splitlines() if line.startswith("event: ")]
        assert events[-1] == "end" and "progress" in events
        data = [json.loads(line.removeprefix("data: ")) for line in text.splitlines() if line.startswith("data: ")]
        assert data[-1]["status"] == "completed" and data[-1]["progress"]["current"] == 8
        currents = [d["progress"]["current"] for d in data]
        assert currents == sorted(currents)

        metrics = client.get(f"/v1/training/jobs/{job_id}/metrics").json()["metrics"]
        assert [m["epoch"] for m in metrics] == list(range(8)), "resume continued, not restarted"

        model = _model(client, wait_job, job_id)
        assert model == {"name": "heimdall-localizer", "version": 1, "reference": "models:/heimdall-localizer/1"}
        # Nothing promoted yet: the newest version serves.
        first = client.post("/v1/localize", json={"measurements": transmission()})
        assert first.status_code == 200 and first.json()["model"] == "models:/heimdall-localizer/1"

        listed = client.get("/v1/models").json()["models"]
        assert [(m["name"], m["version"], m["aliases"]) for m in listed] == [("heimdall-localizer", 1, [])]
        assert listed[0]["job_id"] == job_id and listed[0]["metrics"]["median_error_m"] > 0
        promoted = client.post("/v1/models/heimdall-localizer/1/promote", json={"alias": "production"})
        assert promoted.status_code == 200 and promoted.json()["reference"] == "models:/heimdall-localizer@production"
        assert client.get("/v1/models/heimdall-localizer/1").json()["aliases"] == ["production"]
        reserved = client.post("/v1/models/heimdall-localizer/1/promote", json={"alias": "latest"})
        assert reserved.status_code == 400 and "reserved" in reserved.json()["detail"]

        located = client.post("/v1/localize", json={"measurements": transmission()})
        assert located.status_code == 200
        assert located.json()["model"] == "models:/heimdall-localizer/1"
        assert located.json()["lat"] == first.json()["lat"]

        # A second export of the same job, promoted: the API serves it without a restart.
        again = client.post(f"/v1/training/jobs/{job_id}/export")
        assert again.status_code == 202
        second = wait_job(client, again.json()["job_id"], {"completed"})
        assert second["result"]["version"] == 2
        client.post("/v1/models/heimdall-localizer/2/promote", json={"alias": "production"})
        assert client.post("/v1/localize", json={"measurements": transmission()}).json()["model"] == "models:/heimdall-localizer/2"

        evaluation = client.post("/v1/models/heimdall-localizer/1/evaluate", json={"dataset": "flow", "split": "test"})
        assert evaluation.status_code == 202
        evaluated = wait_job(client, evaluation.json()["job_id"], {"completed"})
        assert evaluated["result"]["n"] > 0 and evaluated["result"]["median_error_m"] > 0
        assert "weighted_centroid" in evaluated["result"]["baselines"]

        kinds = sorted(j["kind"] for j in client.get("/v1/training/jobs").json()["jobs"])
        assert kinds == ["evaluate", "export", "export", "generate", "train"]


def test_cancel_a_running_training_job(embedded_env: Path, wait_job) -> None:
    with TestClient(create_app(Settings()), headers=SCRIPT_HEADERS) as client:
        client.post("/v1/training/synthetic/generate", json={"name": "stop", "num_samples": 1500, "seed": 2})
        body = {"dataset": "stop", "epochs": 50, "batch_size": 64, "hidden_dim": 32, "num_layers": 1}
        job_id = client.post("/v1/training/jobs", json=body).json()["job_id"]
        wait_job(client, job_id, {"running"})
        assert client.post(f"/v1/training/jobs/{job_id}/cancel").json()["cancel_requested"]
        cancelled = wait_job(client, job_id, {"cancelled"})
        assert cancelled["progress"]["current"] < 50 and cancelled["model"] is None
        assert cancelled["export_job_id"] is None, "a cancelled run is not exported"
        assert client.post(f"/v1/training/jobs/{job_id}/resume").status_code == 409
