"""The API over the job queue: a 503 when the broker is down, and every route in the schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from heimdall.service import create_app
from heimdall.service.browser import SCRIPT_HEADERS
from heimdall.settings import Settings


def test_api_answers_503_when_the_broker_is_down(embedded_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEIMDALL_BROKER_URL", "redis://127.0.0.1:1/0")
    with TestClient(create_app(Settings()), headers=SCRIPT_HEADERS) as client:
        health = client.get("/health").json()
        assert health["status"] == "degraded" and health["mode"] == "celery"
        assert health["broker"]["status"] == "unavailable"
        response = client.post("/v1/training/synthetic/generate", json={"name": "x", "num_samples": 10})
        assert response.status_code == 503
        assert response.json()["detail"] == "the job queue is unavailable; try again later"


def test_openapi_schema_lists_every_route(client: TestClient) -> None:
    paths = set(client.get("/openapi.json").json()["paths"])
    assert {
        "/health",
        "/v1/version",
        "/v1/training/synthetic/generate",
        "/v1/training/synthetic/datasets",
        "/v1/training/synthetic/datasets/{name}",
        "/v1/training/synthetic/datasets/{name}/samples",
        "/v1/training/jobs",
        "/v1/training/jobs/{job_id}",
        "/v1/training/jobs/{job_id}/pause",
        "/v1/training/jobs/{job_id}/resume",
        "/v1/training/jobs/{job_id}/cancel",
        "/v1/training/jobs/{job_id}/metrics",
        "/v1/training/jobs/{job_id}/events",
        "/v1/models",
        "/v1/models/{name}/{version}",
        "/v1/models/{name}/{version}/promote",
        "/v1/localize",
        "/train",
        "/train/{task_id}",
    } <= paths
