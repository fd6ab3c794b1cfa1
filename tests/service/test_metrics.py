"""`GET /metrics`: scraped with the real app, parsed with prometheus_client's own parser."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from heimdall.service import create_app
from heimdall.settings import Settings
from heimdall.service.browser import SCRIPT_HEADERS


def scrape(client: TestClient, headers: dict | None = None) -> dict[tuple[str, tuple], float]:
    """Every sample of `/metrics` as {(name, sorted labels): value}."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    """The sample `name` whose labels include `labels` (summed over the others; 0 when absent)."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


def test_request_counters_and_latency_move_by_route_template(client: TestClient) -> None:
    before = scrape(client)
    for _ in range(3):
        assert client.get("/health").status_code == 200
    assert client.get("/v1/training/synthetic/datasets/no-such-set").status_code == 404
    assert client.get("/no/such/path").status_code == 404
    after = scrape(client)
    counted = "heimdall_http_requests_total"
    assert value(after, counted, route="/health", status="200") - value(before, counted, route="/health", status="200") == 3
    # The template, not the raw path: one label value however many names are asked for.
    assert value(after, counted, route="/v1/training/synthetic/datasets/{name}", status="404") == 1
    assert value(after, counted, route="unmatched", status="404") == 1
    latency = "heimdall_http_request_duration_seconds_count"
    assert value(after, latency, route="/health") - value(before, latency, route="/health") == 3
    assert value(after, "heimdall_http_request_duration_seconds_sum", route="/health") > 0
    # The earlier scrape itself was counted.
    assert value(after, counted, route="/metrics", status="200") == 1


def test_job_counts_and_queue_depth_are_read_at_scrape_time(recording_client) -> None:
    client, executor = recording_client
    assert value(scrape(client), "heimdall_queue_depth") == 0
    for name in ("one", "two"):
        response = client.post("/v1/training/synthetic/generate", json={"name": name, "num_samples": 100})
        assert response.status_code == 202, response.text
    samples = scrape(client)
    # The recording executor never runs them: both stay queued.
    assert len(executor.dispatched) == 2
    assert value(samples, "heimdall_queue_depth") == 2
    assert value(samples, "heimdall_jobs", state="queued") == 2
    assert value(samples, "heimdall_jobs", state="completed") == 0


def test_each_app_has_its_own_registry(client: TestClient, embedded_env: Path) -> None:
    client.get("/health")
    with TestClient(create_app(Settings()), headers=SCRIPT_HEADERS) as other:
        assert value(scrape(other), "heimdall_http_requests_total", route="/health") == 0
    assert value(scrape(client), "heimdall_http_requests_total", route="/health") == 1


def test_metrics_sit_behind_the_token_when_one_is_set(embedded_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEIMDALL_API_TOKEN", "s3cret-token")
    with TestClient(create_app(Settings()), headers=SCRIPT_HEADERS) as client:
        refused = client.get("/metrics")
        assert refused.status_code == 401
        samples = scrape(client, headers={"Authorization": "Bearer s3cret-token"})
        # The refused scrape is counted too: the metrics middleware sits outside the guard.
        assert value(samples, "heimdall_http_requests_total", route="/metrics", status="401") == 1
