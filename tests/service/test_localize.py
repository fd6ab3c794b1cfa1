"""`POST /v1/localize` against a small trained, exported and registered model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from heimdall.export.localizer import Localizer
from heimdall.serving.models import MeasurementRow, measurement_table
from heimdall.service import create_app
from heimdall.settings import Settings
from heimdall.service.browser import SCRIPT_HEADERS

pytestmark = pytest.mark.slow


@pytest.fixture
def trained_client(trained, monkeypatch: pytest.MonkeyPatch):
    for name in ("HEIMDALL_BROKER_URL", "HEIMDALL_API_TOKEN", "HEIMDALL_DATABASE_URL", "HEIMDALL_MLFLOW_TRACKING_URI", "HEIMDALL_ARTIFACTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HEIMDALL_HOME", str(trained.home))
    with TestClient(create_app(Settings()), headers=SCRIPT_HEADERS) as client:
        yield client


def _direct(bundle: Path, rows: list[dict]) -> tuple[float, float, float]:
    table = measurement_table([MeasurementRow(**row) for row in rows])
    _ids, predictions = Localizer.from_bundle(bundle).localize_table(table)
    return float(predictions.lat_deg[0]), float(predictions.lon_deg[0]), float(predictions.sigma_major_m[0])


def test_localize_matches_the_bundle_it_serves(trained_client: TestClient, trained, transmission) -> None:
    rows = transmission(heard=5)
    response = trained_client.post("/v1/localize", json={"model": "models:/heimdall-localizer/1", "measurements": rows})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"lat", "lon", "sigma_major_m", "sigma_minor_m", "orientation_deg", "n_receivers_heard", "model", "geojson",
                         "out_of_area", "warnings", "ellipse95_major_m", "ellipse95_minor_m"}
    assert body["out_of_area"] is False and body["warnings"] == []
    assert body["model"] == "models:/heimdall-localizer/1"
    assert body["n_receivers_heard"] == 5
    lat, lon, major = _direct(trained.bundle, rows)
    assert body["lat"] == pytest.approx(lat, abs=1e-6) and body["lon"] == pytest.approx(lon, abs=1e-6)
    assert body["sigma_major_m"] == pytest.approx(major, rel=1e-3)
    assert body["sigma_major_m"] >= body["sigma_minor_m"] > 0
    assert 0 <= body["orientation_deg"] <= 180
    # The 95% ellipse: the 1-sigma one times the k its export measured on the validation split.
    k95 = Localizer.from_bundle(trained.bundle).ellipse95_sigmas
    assert body["ellipse95_major_m"] == pytest.approx(k95 * body["sigma_major_m"], rel=1e-3)
    assert body["ellipse95_minor_m"] == pytest.approx(k95 * body["sigma_minor_m"], rel=1e-3)
    features = body["geojson"]["features"]
    assert [f["geometry"]["type"] for f in features] == ["Point", "Polygon"]
    assert features[0]["geometry"]["coordinates"] == [body["lon"], body["lat"]]
    ring = np.array(features[1]["geometry"]["coordinates"][0])
    assert ring.shape[1] == 2 and np.allclose(ring[0], ring[-1])


def test_default_model_and_cache(trained_client: TestClient, transmission) -> None:
    rows = transmission(heard=4)
    first = trained_client.post("/v1/localize", json={"measurements": rows})
    assert first.status_code == 200, first.text
    # No promotion needed: the production alias, else the newest version.
    assert first.json()["model"].startswith("models:/heimdall-localizer/")
    cache = trained_client.app.state.localizers
    loaded = dict(cache._models)
    for _ in range(5):
        assert trained_client.post("/v1/localize", json={"measurements": rows}).json() == first.json()
    assert dict(cache._models) == loaded and len(loaded) == 1, "loaded once, then served from memory"


def test_unknown_receivers_and_missing_versions(trained_client: TestClient, transmission) -> None:
    rows = transmission(heard=3) + [{"receiver_id": "new-station", "rx_lat": 45.3, "rx_lon": 8.0, "rss_dbm": -95.0, "snr_db": 12.0}]
    response = trained_client.post("/v1/localize", json={"measurements": rows})
    assert response.status_code == 200 and response.json()["n_receivers_heard"] == 4
    missing = trained_client.post("/v1/localize", json={"model": "models:/heimdall-localizer/99", "measurements": rows})
    assert missing.status_code == 404 and "\n" not in missing.json()["detail"]
    alias = trained_client.post("/v1/localize", json={"model": "models:/heimdall-localizer@staging", "measurements": rows})
    assert alias.status_code == 404
