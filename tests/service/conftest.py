"""Fixtures for the API tests: the real app on a fresh HEIMDALL_HOME, embedded worker."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from heimdall.network import default_network
from heimdall.service import create_app
from heimdall.settings import Settings
from heimdall.service.browser import SCRIPT_HEADERS

TERMINAL = {"completed", "failed", "cancelled"}


@pytest.fixture
def embedded_env(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HEIMDALL_HOME set, and no broker or token leaking in from the environment."""
    for name in ("HEIMDALL_BROKER_URL", "HEIMDALL_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def app(embedded_env: Path) -> FastAPI:
    return create_app(Settings())


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, headers=SCRIPT_HEADERS) as test_client:
        yield test_client


class RecordingExecutor:
    """Stands in for the worker where only the HTTP layer is under test: remembers jobs."""

    mode = "recording"

    def __init__(self) -> None:
        self.dispatched: list[tuple[str, str]] = []

    def dispatch(self, kind: str, job_id: str) -> None:
        self.dispatched.append((kind, job_id))

    def health(self) -> dict[str, dict[str, Any]]:
        return {"broker": {"status": "not configured"}, "worker": {"status": "ok"}}

    def close(self) -> None:
        return None


def wait_for(
    client: TestClient, job_id: str, states: set[str], timeout_s: float = 240.0, headers: dict | None = None
) -> dict:
    """Poll a job until its status is one of `states` (fails the test on timeout)."""
    deadline = time.monotonic() + timeout_s
    job: dict = {}
    while time.monotonic() < deadline:
        job = client.get(f"/v1/training/jobs/{job_id}", headers=headers).json()
        if job["status"] in states:
            return job
        if job["status"] in TERMINAL:
            pytest.fail(f"job {job_id} ended {job['status']} ({job.get('error')}) while waiting for {states}")
        time.sleep(0.1)
    pytest.fail(f"job {job_id} still {job.get('status')} after {timeout_s} s (waiting for {states})")


def measurements(heard: int = 5, rss: Callable[[int], float] = lambda i: -100.0 + 3 * i) -> list[dict]:
    """One transmission on the default network: the first `heard` receivers heard it."""
    return [
        {
            "receiver_id": r.receiver_id,
            "rx_lat": r.lat_deg,
            "rx_lon": r.lon_deg,
            "rx_alt_m": r.alt_m,
            "rss_dbm": rss(i) if i < heard else None,
        }
        for i, r in enumerate(default_network().receivers)
    ]


@pytest.fixture
def wait_job() -> Callable[..., dict]:
    """`wait_job(client, job_id, {"completed"})`: poll until the job reaches a state."""
    return wait_for


@pytest.fixture
def transmission() -> Callable[..., list[dict]]:
    """`transmission(heard=5)`: measurement rows of one transmission on the default network."""
    return measurements


@pytest.fixture
def recording_client(app: FastAPI) -> Iterator[tuple[TestClient, RecordingExecutor]]:
    """The real app whose jobs are recorded instead of run (for tests of the HTTP layer)."""
    executor = RecordingExecutor()
    app.state.queue.executor.close()
    app.state.queue.executor = executor
    with TestClient(app, headers=SCRIPT_HEADERS) as test_client:
        yield test_client, executor
