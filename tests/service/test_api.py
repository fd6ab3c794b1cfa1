"""The API against the real app on a fresh home: health, auth, limits, validation, errors."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from heimdall.jobs import repository as jobs
from heimdall.pipelines import generate, open_context
from heimdall.service import create_app
from heimdall.settings import Settings
from heimdall.service.browser import SCRIPT_HEADERS


def _one_line_detail(response) -> str:
    body = response.json()
    assert isinstance(body["detail"], str) and "\n" not in body["detail"], body
    assert "Traceback" not in response.text
    return body["detail"]


def test_health_reports_every_part(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["mode"] == "embedded"
    for part in ("database", "artifact_store", "broker", "worker"):
        assert "status" in body[part], part
    assert body["database"]["status"] == "ok"
    assert body["worker"]["status"] == "ok"


def test_version(client: TestClient) -> None:
    body = client.get("/v1/version").json()
    assert body["name"] == "heimdall" and body["api"] == "v1" and body["version"]


def test_token_is_required_everywhere_but_health(embedded_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEIMDALL_API_TOKEN", "s3cret-token-value")
    with TestClient(create_app(Settings()), headers=SCRIPT_HEADERS) as client:
        assert client.get("/health").status_code == 200
        for path in ("/v1/version", "/v1/models", "/v1/training/jobs", "/openapi.json", "/no/such/path"):
            response = client.get(path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == "Bearer"
            assert "s3cret" not in response.text
        assert client.get("/v1/version", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/v1/version", headers={"Authorization": "Basic s3cret-token-value"}).status_code == 401
        good = {"Authorization": "Bearer s3cret-token-value"}
        assert client.get("/v1/version", headers=good).status_code == 200
        assert client.post("/v1/localize", json={}, headers={}).status_code == 401


def test_huge_body_is_refused_with_413(app) -> None:
    with TestClient(app, headers=SCRIPT_HEADERS) as client:
        blob = b'{"name": "x", "description": "' + b"a" * (2 * 1024 * 1024) + b'"}'
        response = client.post("/v1/training/synthetic/generate", content=blob, headers={"content-type": "application/json"})
        assert response.status_code == 413
        _one_line_detail(response)

        def chunks():
            for _ in range(40):
                yield b"a" * 65536

        # No Content-Length (chunked): counted while read.
        response = client.post("/v1/localize", content=chunks(), headers={"content-type": "application/json"})
        assert response.status_code == 413


@pytest.mark.parametrize(
    "path",
    [
        "/v1/training/synthetic/datasets/..",
        "/v1/training/synthetic/datasets/..%2F..%2Fetc",
        "/v1/training/synthetic/datasets/%2e%2e",
        "/v1/training/synthetic/datasets/.hidden",
        "/v1/training/synthetic/datasets/UPPER",
        "/v1/training/synthetic/datasets/a.b",
        "/v1/training/synthetic/datasets/" + "a" * 65,
        "/v1/training/synthetic/datasets/..%5C..%5Cwindows/samples",
        "/v1/models/..%2F..%2Fetc/1",
        "/v1/models/heimdall-localizer/-1",
        "/v1/training/jobs/not-a-uuid",
    ],
)
def test_path_traversal_and_bad_names_are_rejected(client: TestClient, path: str) -> None:
    for method in ("GET", "DELETE"):
        response = client.request(method, path)
        assert response.status_code in (404, 405, 422), (method, path, response.status_code)
    assert not any(p.name == "etc" for p in client.app.state.settings.home.rglob("etc"))


@pytest.mark.parametrize("name", ["../evil", "a/b", "", "-x", "x" * 65, "a\x00b", ".hidden", "a\\b"])
def test_dataset_names_in_bodies_are_validated(recording_client, name: str) -> None:
    client, executor = recording_client
    response = client.post("/v1/training/synthetic/generate", json={"name": name, "num_samples": 100})
    assert response.status_code == 422
    assert "body.name" in _one_line_detail(response)
    assert executor.dispatched == []


@pytest.mark.parametrize(("name", "slug"), [("Test Dataset 1k", "test-dataset-1k"), ("Evil", "evil"), ("a b", "a-b")])
def test_display_names_in_bodies_become_slugs(recording_client, name: str, slug: str) -> None:
    # The seed's curl body; the CLI applies the same rule (heimdall.names).
    client, executor = recording_client
    body = {"name": name, "num_samples": 1000, "description": "Small dataset for pipeline testing",
            "frequency_mhz": 145.0, "tx_power_dbm": 37.0, "min_snr_db": 3.0}
    response = client.post("/v1/training/synthetic/generate", json=body)
    assert response.status_code == 202, response.text
    job = client.get(f"/v1/training/jobs/{response.json()['job_id']}").json()
    assert job["dataset"] == slug


def test_seed_train_body_with_devices(recording_client) -> None:
    client, executor = recording_client
    generate(open_context(client.app.state.settings), "d", 1000)
    accepted = client.post("/train", json={"dataset": "d", "epochs": 5, "batch_size": 16, "devices": 1})
    assert accepted.status_code == 202, accepted.text
    refused = client.post("/train", json={"dataset": "d", "devices": 2})
    assert refused.status_code == 422
    detail = _one_line_detail(refused)
    assert "body.devices" in detail and "heimdall train --devices N" in detail


def test_validation_errors_name_the_field(recording_client) -> None:
    client, _ = recording_client
    cases = [
        ("/v1/training/synthetic/generate", {"name": "ok", "num_samples": "many"}, "body.num_samples"),
        ("/v1/training/synthetic/generate", {"name": "ok", "num_samples": 10, "tx_power_dbm": [40, 30]}, "tx_power_dbm"),
        ("/v1/training/synthetic/generate", {"name": "ok", "num_samples": 10, "kind": "iq"}, "body.kind"),
        ("/v1/training/synthetic/generate", {"name": "ok", "num_samples": 10, "colour": "red"}, "body.colour"),
        ("/v1/training/jobs", {"dataset": "ok", "epochs": 0}, "body.epochs"),
        ("/v1/training/jobs", {"dataset": "ok", "learning_rate": 2}, "body.learning_rate"),
        ("/v1/training/jobs", {"dataset": "ok", "init_from": "/etc/passwd"}, "body.init_from"),
        ("/v1/localize", {"measurements": []}, "body.measurements"),
        ("/v1/localize", {"model": "/tmp/x.ckpt", "measurements": [{"receiver_id": "a", "rx_lat": 1, "rx_lon": 1, "rss_dbm": -90}]}, "body.model"),
    ]
    for path, body, field in cases:
        response = client.post(path, json=body)
        assert response.status_code == 422, (path, body, response.text)
        assert field in _one_line_detail(response), (field, response.json())


def test_invalid_json_is_a_422(client: TestClient) -> None:
    response = client.post("/v1/localize", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    _one_line_detail(response)


def _heard(i: int) -> dict:
    return {"receiver_id": f"rx{i}", "rx_lat": 45.0 + i * 0.1, "rx_lon": 7.0, "rss_dbm": -90.0}


@pytest.mark.parametrize(
    ("rows", "fragment"),
    [
        ([{"receiver_id": "a", "rx_lat": 45, "rx_lon": 7, "rss_dbm": None}], "at least one receiver"),
        ([_heard(0), _heard(0)], "appears twice"),
        ([{**_heard(0), "rx_lat": 91}], "rx_lat"),
        ([{**_heard(0), "rx_lon": -181}], "rx_lon"),
        ([{**_heard(0), "rss_dbm": 1e6}], "rss_dbm"),
        ([{**_heard(0), "receiver_id": "  "}], "receiver_id"),
        ([{"receiver_id": "a", "rx_lon": 7, "rss_dbm": -90}], "rx_lat"),
    ],
)
def test_localize_bodies_follow_the_measurement_rules(client: TestClient, rows: list, fragment: str) -> None:
    response = client.post("/v1/localize", json={"measurements": rows})
    assert response.status_code == 422
    assert fragment in _one_line_detail(response)


def test_a_localize_body_carries_its_time_as_the_importers_count_it(client: TestClient) -> None:
    from heimdall.service.schemas import LocalizeIn

    naive = LocalizeIn(measurements=[_heard(0), _heard(1)], timestamp="2022-04-25T10:00:03").table()
    aware = LocalizeIn(measurements=[_heard(0)], timestamp="2022-04-25T11:00:03+01:00").table()
    expected = float(np.datetime64("2022-04-25T10:00:03", "s").astype("int64"))
    np.testing.assert_array_equal(naive.timestamp_s, [expected, expected])
    np.testing.assert_array_equal(aware.timestamp_s, [expected])
    assert LocalizeIn(measurements=[_heard(0)]).table().timestamp_s is None
    response = client.post("/v1/localize", json={"measurements": [_heard(0)], "timestamp": "yesterday"})
    assert response.status_code == 422
    assert "timestamp" in _one_line_detail(response)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_localize_refuses_non_finite_numbers(client: TestClient, literal: str) -> None:
    body = '{"measurements": [{"receiver_id": "a", "rx_lat": 45, "rx_lon": 7, "rss_dbm": %s}]}' % literal
    response = client.post("/v1/localize", content=body.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "rss_dbm" in _one_line_detail(response)


def test_localize_without_any_model_is_a_404(client: TestClient, transmission) -> None:
    response = client.post("/v1/localize", json={"measurements": transmission()})
    assert response.status_code == 404
    assert "heimdall-localizer" in _one_line_detail(response)


def test_unknown_things_are_404_with_one_line(client: TestClient) -> None:
    missing = str(uuid.uuid4())
    for method, path in [
        ("GET", "/v1/training/synthetic/datasets/nope"),
        ("GET", "/v1/training/synthetic/datasets/nope/samples"),
        ("DELETE", "/v1/training/synthetic/datasets/nope"),
        ("GET", f"/v1/training/jobs/{missing}"),
        ("GET", f"/v1/training/jobs/{missing}/metrics"),
        ("GET", f"/v1/training/jobs/{missing}/events"),
        ("POST", f"/v1/training/jobs/{missing}/pause"),
        ("GET", f"/train/{missing}"),
        ("GET", "/v1/models/heimdall-localizer/3"),
        ("POST", "/v1/models/heimdall-localizer/3/promote"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        _one_line_detail(response)
    response = client.post("/v1/training/jobs", json={"dataset": "nope"})
    assert response.status_code == 404 and "nope" in _one_line_detail(response)
    response = client.post("/train", json={"dataset": "nope"})
    assert response.status_code == 404


def test_datasets_list_show_samples_delete(client: TestClient) -> None:
    ctx = client.app.state.context
    generate(ctx, "tiny", 300, seed=3)
    listed = client.get("/v1/training/synthetic/datasets").json()["datasets"]
    assert [d["name"] for d in listed] == ["tiny"]
    shown = client.get("/v1/training/synthetic/datasets/tiny").json()
    assert shown["num_samples"] == 300 and shown["network"]["name"] == "italy-websdr"
    page = client.get("/v1/training/synthetic/datasets/tiny/samples", params={"offset": 290, "limit": 50}).json()
    assert page["total"] == 300 and len(page["samples"]) == 10
    assert [s["sample_id"] for s in page["samples"]] == list(range(290, 300))
    assert set(page["samples"][0]) >= {"split", "tx_lat_deg", "tx_lon_deg", "tx_power_dbm", "num_receivers_heard"}
    assert client.get("/v1/training/synthetic/datasets/tiny/samples", params={"limit": 100000}).status_code == 422
    deleted = client.delete("/v1/training/synthetic/datasets/tiny").json()
    assert deleted["deleted_files"] > 0 and deleted["deleted_sample_rows"] == 300
    assert client.get("/v1/training/synthetic/datasets/tiny").status_code == 404
    assert client.get("/v1/training/synthetic/datasets").json()["datasets"] == []
    assert not (client.app.state.settings.resolved_artifacts_dir / "datasets" / "tiny").exists()


def test_delete_refused_while_a_job_uses_the_dataset(recording_client) -> None:
    client, executor = recording_client
    generate(client.app.state.context, "busy", 300, seed=1)
    job_id = client.post("/v1/training/jobs", json={"dataset": "busy", "epochs": 1}).json()["job_id"]
    assert executor.dispatched == [("train", job_id)]
    response = client.delete("/v1/training/synthetic/datasets/busy")
    assert response.status_code == 409 and job_id in _one_line_detail(response)
    assert client.post(f"/v1/training/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    assert client.delete("/v1/training/synthetic/datasets/busy").status_code == 200


def test_generate_job_with_inline_network(client: TestClient, wait_job) -> None:
    body = {
        "name": "inline",
        "num_samples": 400,
        "seed": 2,
        "description": "three receivers",
        "frequency_mhz": 433.5,
        "tx_power_dbm": 37,
        "min_snr_db": 5,
        "min_receivers": 2,
        "network": {
            "name": "trio",
            "receivers": [
                {"receiver_id": "a", "lat_deg": 45.0, "lon_deg": 7.0},
                {"receiver_id": "b", "lat_deg": 45.2, "lon_deg": 7.4, "alt_m": 300},
                {"receiver_id": "c", "lat_deg": 44.8, "lon_deg": 7.5},
            ],
        },
    }
    response = client.post("/v1/training/synthetic/generate", json=body)
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["status"] == "queued" and response.headers["location"] == accepted["status_url"]
    job = wait_job(client, accepted["job_id"], {"completed"})
    assert job["kind"] == "generate" and job["result"]["samples"] == 400
    assert job["progress"] == {"current": 400, "total": 400, "fraction": 1.0, "message": "generated 400 samples"}
    shown = client.get("/v1/training/synthetic/datasets/inline").json()
    assert [r["receiver_id"] for r in shown["network"]["receivers"]] == ["a", "b", "c"]
    assert shown["network"]["frequency_hz"] == pytest.approx(433.5e6)
    assert shown["scenario"]["tx_power_min_dbm"] == shown["scenario"]["tx_power_max_dbm"] == 37
    assert shown["scenario"]["min_receivers"] == 2
    again = client.post("/v1/training/synthetic/generate", json=body)
    assert again.status_code == 409 and "already exists" in _one_line_detail(again)


def test_invalid_network_is_a_400(recording_client) -> None:
    client, executor = recording_client
    same_place = {"lat_deg": 45.0, "lon_deg": 7.0}
    body = {
        "name": "dup",
        "num_samples": 100,
        "network": {"receivers": [{"receiver_id": "a", **same_place}, {"receiver_id": "b", **same_place}]},
    }
    response = client.post("/v1/training/synthetic/generate", json=body)
    assert response.status_code == 400 and "duplicate position" in _one_line_detail(response)
    assert executor.dispatched == []


def test_job_controls_follow_the_state_machine(recording_client) -> None:
    client, executor = recording_client
    generate(client.app.state.context, "ctl", 300, seed=1)
    job_id = client.post("/train", json={"dataset": "ctl", "epochs": 3}).json()["task_id"]
    seed_view = client.get(f"/train/{job_id}").json()
    assert seed_view["task_id"] == job_id and seed_view["status"] == "queued" and seed_view["kind"] == "train"
    for action in ("pause", "resume"):
        response = client.post(f"/v1/training/jobs/{job_id}/{action}")
        assert response.status_code == 409, action
        assert "queued" in _one_line_detail(response)
    db = client.app.state.context.db
    assert jobs.claim_job(db, job_id)
    assert client.post(f"/v1/training/jobs/{job_id}/pause").json()["pause_requested"] is True
    assert jobs.control_request(db, job_id) == "pause"
    assert client.post(f"/v1/training/jobs/{job_id}/cancel").json()["cancel_requested"] is True
    assert jobs.control_request(db, job_id) == "cancel"
    jobs.finish_job(db, job_id, "paused")
    view = client.post(f"/v1/training/jobs/{job_id}/resume").json()
    assert view["status"] == "queued" and executor.dispatched[-1] == ("train", job_id)
    assert client.post(f"/v1/training/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    response = client.post(f"/v1/training/jobs/{job_id}/cancel")
    assert response.status_code == 409 and "already cancelled" in _one_line_detail(response)
    listed = client.get("/v1/training/jobs", params={"status": "cancelled", "kind": "train"}).json()["jobs"]
    assert [j["job_id"] for j in listed] == [job_id]
    assert client.get("/v1/training/jobs", params={"status": "bogus"}).status_code == 422
    # A cancelled job handed to a worker late does not run.
    assert not jobs.claim_job(db, job_id)


def test_events_stream_ends_on_a_terminal_state(recording_client) -> None:
    client, _ = recording_client
    generate(client.app.state.context, "ev", 300, seed=1)
    job_id = client.post("/v1/training/jobs", json={"dataset": "ev", "epochs": 1}).json()["job_id"]
    client.post(f"/v1/training/jobs/{job_id}/cancel")
    with client.stream("GET", f"/v1/training/jobs/{job_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    events = [line.removeprefix("event: ") for line in text.splitlines() if line.startswith("event: ")]
    assert events == ["progress", "end"]
    data = [json.loads(line.removeprefix("data: ")) for line in text.splitlines() if line.startswith("data: ")]
    assert data[-1]["status"] == "cancelled"


def test_events_stream_is_bounded(recording_client) -> None:
    client, _ = recording_client
    generate(client.app.state.context, "evb", 300, seed=1)
    job_id = client.post("/v1/training/jobs", json={"dataset": "evb", "epochs": 1}).json()["job_id"]
    with client.stream("GET", f"/v1/training/jobs/{job_id}/events", params={"max_duration_s": 0.3, "interval_s": 0.1}) as response:
        text = "".join(response.iter_text())
    assert "event: timeout" in text
    assert client.get(f"/v1/training/jobs/{job_id}/events", params={"max_duration_s": 1e9}).status_code == 422


def test_internal_errors_are_a_bare_500(client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    from heimdall.service.routes import datasets

    def explode(_ctx):
        raise RuntimeError("password=hunter2 at /very/secret/path\nTraceback (most recent call last)")

    monkeypatch.setattr(datasets.pipelines, "datasets_list", explode)
    with caplog.at_level(logging.ERROR):
        response = client.get("/v1/training/synthetic/datasets")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "RuntimeError" in logged
    assert "hunter2" not in logged and "Traceback" not in logged
    assert all(r.exc_info is None for r in caplog.records)


def test_configured_secrets_never_reach_a_response(embedded_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from heimdall.errors import InputError
    from heimdall.service.routes import datasets

    monkeypatch.setenv("HEIMDALL_API_TOKEN", "tok-abcdef")
    monkeypatch.setenv("HEIMDALL_S3_SECRET_ACCESS_KEY", "s3-very-secret")

    def leak(_ctx):
        raise InputError("cannot reach s3 with key s3-very-secret (token tok-abcdef)")

    monkeypatch.setattr(datasets.pipelines, "datasets_list", leak)
    with TestClient(create_app(Settings()), headers=SCRIPT_HEADERS) as client:
        response = client.get("/v1/training/synthetic/datasets", headers={"Authorization": "Bearer tok-abcdef"})
    assert response.status_code == 400
    assert "s3-very-secret" not in response.text and "tok-abcdef" not in response.text


def test_embedded_restart_settles_jobs_left_behind(embedded_env: Path) -> None:
    settings = Settings()
    ctx = open_context(settings)
    params = {"spec": {"name": "x", "num_samples": 300}, "executor": "embedded"}
    running = jobs.create_job(ctx.db, "generate", "x", params)
    jobs.claim_job(ctx.db, running)
    cli_job = jobs.create_job(ctx.db, "train", "y", {"dataset": "y"})
    jobs.start_job(ctx.db, cli_job)
    queued = jobs.create_job(ctx.db, "generate", "z", {"spec": {"name": "z", "num_samples": 300, "seed": 4}, "executor": "embedded"})
    with TestClient(create_app(settings), headers=SCRIPT_HEADERS) as client:
        assert jobs.get_job(ctx.db, running).status == "failed"
        assert "interrupted" in jobs.get_job(ctx.db, running).error
        assert jobs.get_job(ctx.db, cli_job).status == "running"  # a CLI run is not ours to settle
        deadline = 100
        while jobs.get_job(ctx.db, queued).status in jobs.ACTIVE and deadline:
            import time

            time.sleep(0.1)
            deadline -= 1
        assert jobs.get_job(ctx.db, queued).status == "completed"
        assert client.get("/v1/training/synthetic/datasets/z").status_code == 200


def test_the_published_schema_is_the_apps_own(app) -> None:  # noqa: ANN001
    # docs/openapi.json is what client authors read: regenerate it with scripts/gen_api_docs.py.
    published = json.loads((Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text())
    assert published == json.loads(json.dumps(app.openapi())), "docs/openapi.json is stale: run scripts/gen_api_docs.py"
