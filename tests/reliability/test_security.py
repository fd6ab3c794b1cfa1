"""Security: the token guards every route, names cannot traverse or inject, secrets never leak.

The routes are enumerated from the app's OpenAPI schema (plus the documentation pages), so
a route added later is covered without editing this file.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from heimdall.cli import app as cli_app
from heimdall.service import create_app
from heimdall.settings import Settings
from heimdall.service.browser import SCRIPT_HEADERS

TOKEN = "sec-token-" + uuid.uuid4().hex
#: Routes that answer without a token (load balancers probe them).
OPEN_ROUTES = {"/health", "/metrics"}
BAD_NAMES = ["../x", "a/b", "x;drop table", "x' OR '1'='1", "ünïcødé", "a" * 65, "..", ".hidden", "a\x00b", " x"]
PATH_VALUES = {"name": "x", "version": "1", "job_id": str(uuid.uuid4()), "task_id": str(uuid.uuid4())}


@pytest.fixture
def secured_app(home: Path, monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    for name in ("HEIMDALL_BROKER_URL", "HEIMDALL_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return create_app(Settings(home=home, api_token=TOKEN))


@pytest.fixture
def client(secured_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(secured_app, headers=SCRIPT_HEADERS) as test_client:
        yield test_client


def _operations(app: FastAPI) -> list[tuple[str, str]]:
    """(method, concrete path) of every operation in the schema, and the docs pages."""
    found = [("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/redoc"), ("GET", "/no/such/route")]
    for path, operations in app.openapi()["paths"].items():
        for method in operations:
            found.append((method.upper(), path.format(**PATH_VALUES)))
    return found


def test_every_route_but_health_needs_the_token(client: TestClient, secured_app: FastAPI) -> None:
    operations = _operations(secured_app)
    assert len(operations) > 20
    for method, path in operations:
        if path in OPEN_ROUTES:
            continue
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                        {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": "Bearer "}):
            response = client.request(method, path, headers=headers, json={})
            assert response.status_code == 401, (method, path, headers, response.status_code)
            assert response.json() == {"detail": "missing or invalid bearer token"}
    assert client.get("/health").status_code == 200
    assert client.get("/v1/version", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_bad_names_are_refused_by_every_route_that_takes_one(client: TestClient, home: Path) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for bad in BAD_NAMES:
        quoted = quote(bad, safe="")
        requests = [
            ("GET", f"/v1/training/synthetic/datasets/{quoted}", None),
            ("DELETE", f"/v1/training/synthetic/datasets/{quoted}", None),
            ("GET", f"/v1/training/synthetic/datasets/{quoted}/samples", None),
            ("GET", f"/v1/models/{quoted}/1", None),
            ("POST", f"/v1/models/{quoted}/1/promote", {"alias": "production"}),
            ("POST", f"/v1/models/{quoted}/1/evaluate", {"dataset": "x"}),
            ("POST", "/v1/models/heimdall-localizer/1/evaluate", {"dataset": bad}),
            ("POST", "/v1/models/heimdall-localizer/1/promote", {"alias": bad}),
            ("POST", "/v1/training/synthetic/generate", {"name": bad, "num_samples": 10}),
            ("POST", "/v1/training/synthetic/generate", {"name": "ok", "num_samples": 10, "network": {
                "name": bad, "receivers": [{"receiver_id": "a", "lat_deg": 45.0, "lon_deg": 7.0}]}}),
            ("POST", "/v1/training/jobs", {"dataset": bad}),
            ("POST", "/train", {"dataset": bad}),
            ("GET", f"/v1/training/jobs/{quoted}", None),
            ("POST", "/v1/localize", {"model": f"models:/{bad}/1", "measurements": []}),
        ]
        for method, path, body in requests:
            response = client.request(method, path, headers=auth, json=body)
            assert 400 <= response.status_code < 500, (method, path, bad, response.status_code, response.text)
            assert "Traceback" not in response.text
    # Nothing was written outside (or inside) the home for any of them.
    assert sorted(p.name for p in home.parent.iterdir()) == [home.name]
    assert not list((home / "staging").glob("*")) if (home / "staging").exists() else True


def test_cli_refuses_bad_names_with_one_line(home: Path) -> None:
    runner = CliRunner()
    for bad in ["../x", "a/b", "x;drop table", "ünï"]:
        for args in (["generate", "--name", bad, "--samples", "10"], ["datasets", "show", bad]):
            result = runner.invoke(cli_app, args)
            assert result.exit_code == 1, (args, result.output)
            lines = [line for line in result.output.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert sorted(p.name for p in home.parent.iterdir()) in ([home.name], [])


def _leaks(secrets: list[str], texts: list[str]) -> list[str]:
    return [f"{secret[:6]}... in {text[:200]!r}" for text in texts for secret in secrets if secret in text]


def test_token_never_logged_nor_returned(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    bodies = []
    for method, path, body in [
        ("GET", "/v1/version", None), ("GET", "/health", None), ("GET", "/v1/training/jobs", None),
        ("POST", "/v1/training/synthetic/generate", {"name": "leak", "num_samples": 1000}),
        ("POST", "/v1/training/jobs", {"dataset": "missing"}), ("POST", "/v1/localize", {"measurements": []}),
        ("GET", "/v1/training/synthetic/datasets/nope", None), ("GET", "/openapi.json", None),
    ]:
        response = client.request(method, path, headers=auth, json=body)
        bodies.append(response.text + json.dumps(dict(response.headers)))
    assert not _leaks([TOKEN], bodies + [r.getMessage() for r in caplog.records])


def test_cli_with_unreachable_postgres_does_not_print_the_password(home: Path, caplog: pytest.LogCaptureFixture) -> None:
    password = "pw-" + uuid.uuid4().hex
    url = f"postgresql+psycopg://heimdall:{password}@127.0.0.1:9/heimdall"
    caplog.set_level(logging.DEBUG)
    result = CliRunner().invoke(cli_app, ["datasets", "list"], env={"HEIMDALL_DATABASE_URL": url})
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "127.0.0.1:9" in lines[0]  # the message still says which database
    assert not _leaks([password], [result.output] + [r.getMessage() for r in caplog.records])


@pytest.mark.services
def test_service_secrets_never_logged_nor_returned(
    home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tools
) -> None:
    """A full request cycle on PostgreSQL (URL with a password) and S3 (secret key): no leak."""
    for name in ("HEIMDALL_BROKER_URL", "HEIMDALL_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    database_url = tools.require_env("HEIMDALL_TEST_DATABASE_URL")
    pg_password = "pg-" + uuid.uuid4().hex
    s3_secret = "s3-" + uuid.uuid4().hex
    # The test server trusts local connections, so any password is accepted (and must be hidden).
    assert "postgres@" in database_url
    settings = Settings(
        home=home,
        api_token=TOKEN,
        database_url=database_url.replace("postgres@", f"postgres:{pg_password}@"),
        s3_endpoint_url=tools.require_env("HEIMDALL_TEST_S3_ENDPOINT_URL"),
        s3_access_key_id="heimdall-test",
        s3_secret_access_key=s3_secret,
        s3_bucket_prefix=f"sec-{uuid.uuid4().hex[:8]}",
    )
    caplog.set_level(logging.DEBUG)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    texts: list[str] = []
    name = f"sec-{uuid.uuid4().hex[:8]}"
    app = create_app(settings)
    with TestClient(app, headers=SCRIPT_HEADERS) as client:
        job = client.post("/v1/training/synthetic/generate", headers=auth, json={"name": name, "num_samples": 1000})
        assert job.status_code == 202, job.text
        status: dict = {}
        for _ in range(600):
            status = client.get(job.json()["status_url"], headers=auth).json()
            if status["status"] in ("completed", "failed"):
                break
            time.sleep(0.1)
        assert status["status"] == "completed", status
        for method, path, body in [
            ("GET", "/health", None), ("GET", "/v1/version", None), ("GET", f"/v1/training/synthetic/datasets/{name}", None),
            ("GET", "/v1/training/synthetic/datasets", None), ("GET", "/v1/training/jobs", None),
            ("POST", "/v1/training/jobs", {"dataset": "missing"}), ("GET", "/v1/models", None),
            ("POST", "/v1/localize", {"measurements": []}), ("DELETE", f"/v1/training/synthetic/datasets/{name}", None),
        ]:
            response = client.request(method, path, headers=auth, json=body)
            assert response.status_code < 500, (path, response.text)
            texts.append(response.text + json.dumps(dict(response.headers)))
        texts.append(json.dumps(status))
    # The app's lifespan stops its queue but leaves the context's connections open.
    app.state.context.close()
    secrets = [TOKEN, pg_password, s3_secret]
    assert not _leaks(secrets, texts + [r.getMessage() for r in caplog.records])
