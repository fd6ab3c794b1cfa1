"""Web pages cannot drive a token-less API (issue 20, finding 3), against a real server.

Reported: `POST .../promote` with no body and `Origin: http://evil.example` -> 200;
`DELETE .../datasets/NAME` with `Host: attacker.example` -> 200 (DNS rebinding); the
trailing-slash redirect copied the Host header into `Location`.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from heimdall.pipelines import generate, open_context
from heimdall.service import create_app
from heimdall.service.browser import SCRIPT_HEADERS, host_name
from heimdall.settings import Settings

DATASET = "/v1/training/synthetic/datasets/tiny"
PROMOTE = "/v1/models/heimdall-localizer/1/promote"


@pytest.fixture
def server(tmp_path: Path, local_server):  # noqa: ANN001, ANN201 - fixtures from conftest
    home = tmp_path / "home"
    generate(open_context(Settings(home=home)), "tiny", 300, seed=1)
    return local_server(home)


def test_browser_shaped_requests_are_refused_by_a_real_server(server) -> None:  # noqa: ANN001
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        # Cross-site page: a body-less POST carrying its Origin.
        refused = client.post(PROMOTE, headers={"Origin": "http://evil.example"})
        assert refused.status_code == 403 and "Origin" in refused.json()["detail"]
        # ...also when it manages a JSON content type (preflighted, but refuse anyway).
        assert client.post(PROMOTE, json={}, headers={"Origin": "http://evil.example"}).status_code == 403
        # DNS rebinding: same origin as far as the browser knows, but the Host is the attacker's.
        rebound = client.delete(DATASET, headers={"Host": "attacker.example", **SCRIPT_HEADERS})
        assert rebound.status_code == 400 and "attacker.example" not in rebound.text
        assert client.get(DATASET, headers={"Host": "attacker.example:8002"}).status_code == 400
        assert client.get("/health", headers={"Host": "10.1.2.3:8002"}).status_code == 200  # probes by address
        # A form post: simple content type, no custom header, no Origin (old browsers).
        form = client.delete(DATASET, headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert form.status_code == 415
        assert client.post(PROMOTE, content=b"alias=production", headers={"Content-Type": "text/plain"}).status_code == 415
        # The dataset survived all of it.
        assert client.get(DATASET).status_code == 200
        # The trailing-slash redirect is gone: no Location to echo a Host into.
        slash = client.get("/v1/training/synthetic/datasets/", headers={"Host": "localhost"}, follow_redirects=False)
        assert slash.status_code == 404 and "location" not in slash.headers
        # Programs still work: same-origin Origin with JSON, or the custom header.
        same_origin = client.post(PROMOTE, json={}, headers={"Origin": server.base_url})
        assert same_origin.status_code == 404  # reached the route: no such model
        assert client.get("/v1/version", headers={"Host": f"localhost:{server.port}"}).status_code == 200
        deleted = client.delete(DATASET, headers=SCRIPT_HEADERS)
        assert deleted.status_code == 200 and deleted.json()["dataset"] == "tiny"


def test_trusted_hosts_are_configurable(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEIMDALL_TRUSTED_HOSTS", "heimdall.lab.example, 10.0.0.5")
    settings = Settings(home=home)
    assert settings.trusted_hosts == ["heimdall.lab.example", "10.0.0.5"]
    with TestClient(create_app(settings), base_url="http://heimdall.lab.example:8002") as client:
        assert client.get("/v1/version").status_code == 200
        assert client.get("/v1/version", headers={"Host": "localhost"}).status_code == 400
        assert client.get("/v1/version", headers={"Host": "10.0.0.5:8002"}).status_code == 200
    with TestClient(create_app(Settings(home=home, trusted_hosts=["*"])), base_url="http://anything.example") as client:
        assert client.get("/v1/version").status_code == 200


def test_host_names_without_ports() -> None:
    assert host_name("LocalHost:8002") == "localhost"
    assert host_name("[::1]:8002") == "::1"
    assert host_name("::1") == "::1"
    assert host_name("127.0.0.1") == "127.0.0.1"


def test_a_token_counts_as_the_custom_header(home: Path) -> None:
    with TestClient(create_app(Settings(home=home, api_token="t0ken-xyz")), base_url="http://localhost") as client:
        response = client.delete(DATASET, headers={"Authorization": "Bearer t0ken-xyz"})
        assert response.status_code == 404  # past the guard: no dataset of that name
        assert client.delete(DATASET, headers=SCRIPT_HEADERS).status_code == 401
        assert client.delete(DATASET).status_code == 415  # the browser check comes first
