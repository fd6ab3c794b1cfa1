"""Rollout in `POST /v1/localize`: shadow answers only in logs and metrics, canary share."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from heimdall.errors import ConfigError
from heimdall.export.localizer import Localizer
from heimdall.geo import haversine_m
from heimdall.pipelines import TrainRequest, export, generate, open_context, train
from heimdall.serving.rollout import request_share
from heimdall.serving.models import MeasurementRow, measurement_table, promote_model
from heimdall.service import create_app
from heimdall.settings import Settings
from heimdall.service.browser import SCRIPT_HEADERS

pytestmark = pytest.mark.slow

V1, V2 = "models:/heimdall-localizer/1", "models:/heimdall-localizer/2"


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Two differently trained versions of one model; v1 promoted to production."""
    home = tmp_path_factory.mktemp("rollout") / "home"
    ctx = open_context(Settings(home=home))
    generate(ctx, "roll", 2000, seed=4)
    bundles = []
    for seed in (0, 1):
        trained = train(ctx, TrainRequest(dataset="roll", epochs=2, batch_size=128, hidden_dim=32, num_layers=1, seed=seed))
        bundles.append(Path(export(ctx, Path(trained.best_checkpoint)).bundle))
    promote_model(ctx, "heimdall-localizer", 1, "production")
    ctx.close()
    return home, bundles[0], bundles[1]


@pytest.fixture
def serve(two_models, monkeypatch: pytest.MonkeyPatch):
    """`serve(**settings)`: a TestClient of the real app on the two-model home."""
    for name in ("HEIMDALL_BROKER_URL", "HEIMDALL_API_TOKEN", "HEIMDALL_DATABASE_URL", "HEIMDALL_MLFLOW_TRACKING_URI",
                 "HEIMDALL_ARTIFACTS_DIR", "HEIMDALL_SHADOW_MODEL", "HEIMDALL_CANARY_MODEL", "HEIMDALL_CANARY_FRACTION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HEIMDALL_HOME", str(two_models[0]))
    clients: list[TestClient] = []

    def start(**fields) -> TestClient:
        client = TestClient(create_app(Settings(**fields)), headers=SCRIPT_HEADERS)
        clients.append(client.__enter__())
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def _metric(client: TestClient, name: str, **labels: str) -> float:
    """Sum of the scraped samples `name` whose labels include `labels`."""
    text = client.get("/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and set(labels.items()) <= set(sample.labels.items())
    )


def _rows(transmission, rng: np.random.Generator) -> list[dict]:
    levels = rng.uniform(-120.0, -70.0, size=7)
    return transmission(heard=5, rss=lambda i: float(levels[i]))


def _shadow_lines(caplog: pytest.LogCaptureFixture) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "heimdall.rollout" and r.getMessage().startswith("{")]


def test_the_shadow_answer_is_logged_and_counted_never_returned(serve, two_models, transmission, caplog) -> None:
    client = serve(shadow_model=V2)
    rows = transmission(heard=5)
    with caplog.at_level(logging.INFO, logger="heimdall.rollout"):
        response = client.post("/v1/localize", json={"measurements": rows})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == V1, "production answers"
    assert set(body) == {"lat", "lon", "sigma_major_m", "sigma_minor_m", "orientation_deg", "n_receivers_heard", "model", "geojson",
                         "out_of_area", "warnings", "ellipse95_major_m", "ellipse95_minor_m"}
    assert "heimdall-localizer/2" not in response.text and "shadow" not in response.text
    # The answer is v1's own, untouched by the shadow.
    table = measurement_table([MeasurementRow(**row) for row in rows])
    served = Localizer.from_bundle(two_models[1]).localize_table(table)[1]
    assert body["lat"] == pytest.approx(float(served.lat_deg[0]), abs=1e-6)
    # The shadow's answer is in the log: v2's own position, and its distance to v1's.
    shadow = Localizer.from_bundle(two_models[2]).localize_table(table)[1]
    [line] = _shadow_lines(caplog)
    assert line["served_model"] == V1 and line["shadow_model"] == V2
    assert line["shadow_lat"] == pytest.approx(float(shadow.lat_deg[0]), abs=1e-6)
    expected_m = float(haversine_m(body["lat"], body["lon"], shadow.lat_deg[0], shadow.lon_deg[0]))
    assert expected_m > 1.0, "two differently trained models disagree"
    assert line["distance_m"] == pytest.approx(expected_m, abs=0.5)
    # ...and in the metrics.
    assert _metric(client, "heimdall_shadow_disagreement_m_count", served_model=V1, shadow_model=V2) == 1
    assert _metric(client, "heimdall_shadow_disagreement_m_sum") == pytest.approx(expected_m, abs=0.5)
    assert _metric(client, "heimdall_localization_sigma_major_m_count", model_version=V1, role="production") == 1
    assert _metric(client, "heimdall_http_requests_total", route="/v1/localize", status="200", model_version=V1) == 1
    # A request naming its model gets exactly that one, without a shadow.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="heimdall.rollout"):
        explicit = client.post("/v1/localize", json={"model": V1, "measurements": rows})
    assert explicit.status_code == 200 and not _shadow_lines(caplog)


def test_a_failing_shadow_cannot_fail_the_request(serve, transmission, caplog) -> None:
    client = serve(shadow_model="models:/heimdall-localizer/99")
    with caplog.at_level(logging.WARNING, logger="heimdall.rollout"):
        response = client.post("/v1/localize", json={"measurements": transmission(heard=4)})
    assert response.status_code == 200 and response.json()["model"] == V1
    assert any("shadow model models:/heimdall-localizer/99 failed" in r.getMessage() for r in caplog.records)
    assert _metric(client, "heimdall_shadow_failures_total") == 1


def test_the_canary_answers_its_share_deterministically(serve, transmission) -> None:
    fraction, n = 0.3, 300
    client = serve(canary_model=V2, canary_fraction=fraction)
    rng = np.random.default_rng(7)
    bodies = [{"measurements": _rows(transmission, rng)} for _ in range(n)]
    answered = [client.post("/v1/localize", json=body).json()["model"] for body in bodies]
    assert set(answered) == {V1, V2}
    canary = answered.count(V2)
    # Binomial(n, 0.3): mean 90, sd 7.9; 4 sd either side fails about once in 15,000 runs.
    assert abs(canary - fraction * n) < 4 * math.sqrt(n * fraction * (1 - fraction)), canary
    # Deterministic per request: the same body meets the same model again.
    for body, model in list(zip(bodies, answered, strict=True))[:20]:
        assert client.post("/v1/localize", json=body).json()["model"] == model
    assert _metric(client, "heimdall_localization_sigma_major_m_count", role="canary") == canary + answered[:20].count(V2)


def test_request_share_is_uniform_and_fixed_by_the_key() -> None:
    shares = np.array([request_share(f"request-{i}") for i in range(20_000)])
    assert request_share("same") == request_share("same")
    assert 0 <= shares.min() and shares.max() < 1
    # Deciles of a uniform draw: each holds 10 % +- 4 sd (sd 0.21 %).
    counts = np.histogram(shares, bins=10, range=(0, 1))[0] / len(shares)
    assert np.all(np.abs(counts - 0.1) < 0.0085), counts


def test_rollout_settings_are_checked_at_start(two_models, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEIMDALL_HOME", str(two_models[0]))
    with pytest.raises(ConfigError, match="HEIMDALL_CANARY_FRACTION > 0 needs HEIMDALL_CANARY_MODEL"):
        create_app(Settings(canary_fraction=0.2))
    with pytest.raises(ConfigError, match="HEIMDALL_SHADOW_MODEL: invalid model reference"):
        create_app(Settings(shadow_model="heimdall-localizer"))
    monkeypatch.setenv("HEIMDALL_CANARY_FRACTION", "1.5")
    with pytest.raises(ValidationError, match="canary_fraction"):
        Settings()


def test_serving_int8_without_an_int8_graph_is_a_503_naming_the_setting(serve, transmission) -> None:
    client = serve(serving_variant="int8")
    response = client.post("/v1/localize", json={"measurements": transmission(heard=4)})
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert "HEIMDALL_SERVING_VARIANT=int8" in detail and "no int8 variant" in detail and "\n" not in detail
