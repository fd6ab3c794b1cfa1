"""The API under uvicorn with a real Redis broker and a real Celery worker process.

Needs `HEIMDALL_TEST_REDIS_URL` (and uses `HEIMDALL_TEST_DATABASE_URL` when set): `make test`
starts the services (scripts/services.sh up) and exports them. Missing variables fail the
test; they never skip it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from heimdall.network import default_network

pytestmark = [pytest.mark.services, pytest.mark.slow]

TOKEN = "services-token-" + uuid.uuid4().hex[:8]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REPO = Path(__file__).resolve().parents[2]


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run `make test` (it starts Redis/PostgreSQL and exports the test URLs)")
    return value


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


class Stack:
    """A uvicorn API and a Celery worker sharing one HEIMDALL_HOME and one broker."""

    def __init__(self, tmp_path: Path, redis_url: str, database_url: str | None) -> None:
        self.home = tmp_path / "home"
        self.logs = tmp_path / "logs"
        self.logs.mkdir()
        self.port = _free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HEIMDALL_")}
        self.env.update(HEIMDALL_HOME=str(self.home), HEIMDALL_BROKER_URL=redis_url, HEIMDALL_API_TOKEN=TOKEN)
        if database_url:
            self.env["HEIMDALL_DATABASE_URL"] = database_url
        self.processes: list[tuple[subprocess.Popen, Path]] = []

    def start(self, name: str, args: list[str]) -> None:
        log = self.logs / f"{name}.log"
        handle = log.open("wb")
        process = subprocess.Popen([sys.executable, *args], cwd=REPO, env=self.env, stdout=handle, stderr=subprocess.STDOUT)
        handle.close()
        self.processes.append((process, log))

    def stop(self) -> None:
        for process, _log in self.processes:
            if process.poll() is None:
                process.terminate()
        for process, _log in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def diagnostics(self) -> str:
        return "\n".join(f"--- {log.name} (exit {p.poll()})\n{_tail(log)}" for p, log in self.processes)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    redis_url = _required("HEIMDALL_TEST_REDIS_URL")
    services = Stack(tmp_path, redis_url, os.environ.get("HEIMDALL_TEST_DATABASE_URL"))
    try:
        # What `heimdall worker` runs.
        services.start("worker", ["-c", "from heimdall.worker import main; main()"])
        services.start(
            "api",
            ["-m", "uvicorn", "--factory", "heimdall.service.app:create_app", "--host", "127.0.0.1",
             "--port", str(services.port), "--log-level", "warning"],
        )
        yield services
    finally:
        services.stop()


def _wait(client: httpx.Client, job_id: str, states: set[str], stack: Stack, timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    job: dict = {}
    while time.monotonic() < deadline:
        job = client.get(f"/v1/training/jobs/{job_id}").json()
        if job["status"] in states:
            return job
        if job["status"] in ("failed", "cancelled", "completed"):
            pytest.fail(f"job {job_id} ended {job['status']} ({job['error']}) waiting for {states}\n{stack.diagnostics()}")
        time.sleep(0.25)
    pytest.fail(f"job {job_id} still {job.get('status')} after {timeout_s} s\n{stack.diagnostics()}")


def test_jobs_run_on_a_celery_worker(stack: Stack) -> None:
    base = f"http://127.0.0.1:{stack.port}"
    with httpx.Client(base_url=base, headers=AUTH, timeout=30) as client:
        deadline = time.monotonic() + 90
        health: dict = {}
        while time.monotonic() < deadline:
            try:
                health = client.get("/health").json()
                if health["worker"]["status"] == "ok":
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        assert health.get("status") == "ok", f"{health}\n{stack.diagnostics()}"
        assert health["mode"] == "celery" and health["broker"]["status"] == "ok" and health["worker"]["workers"] >= 1
        assert httpx.get(f"{base}/v1/version").status_code == 401

        name = f"svc-{uuid.uuid4().hex[:8]}"
        generated = client.post("/v1/training/synthetic/generate", json={"name": name, "num_samples": 1200, "seed": 3})
        assert generated.status_code == 202, generated.text
        _wait(client, generated.json()["job_id"], {"completed"}, stack)

        body = {"dataset": name, "epochs": 6, "batch_size": 256, "hidden_dim": 32, "num_layers": 1}
        job_id = client.post("/v1/training/jobs", json=body).json()["job_id"]
        _wait(client, job_id, {"running"}, stack)
        assert client.post(f"/v1/training/jobs/{job_id}/pause").status_code == 202
        paused = _wait(client, job_id, {"paused"}, stack)
        assert paused["progress"]["current"] < 6
        assert client.post(f"/v1/training/jobs/{job_id}/resume").status_code == 202
        _wait(client, job_id, {"completed"}, stack)
        job = client.get(f"/v1/training/jobs/{job_id}").json()
        deadline = time.monotonic() + 120
        while job["model"] is None and time.monotonic() < deadline:
            time.sleep(0.5)
            job = client.get(f"/v1/training/jobs/{job_id}").json()
        assert job["model"] is not None, stack.diagnostics()
        metrics = client.get(f"/v1/training/jobs/{job_id}/metrics").json()["metrics"]
        assert [m["epoch"] for m in metrics] == list(range(6))

        version = job["model"]["version"]
        assert client.post(f"/v1/models/heimdall-localizer/{version}/promote", json={"alias": "production"}).status_code == 200
        rows = [
            {"receiver_id": r.receiver_id, "rx_lat": r.lat_deg, "rx_lon": r.lon_deg, "rss_dbm": -95.0 + i if i < 5 else None}
            for i, r in enumerate(default_network().receivers)
        ]
        located = client.post("/v1/localize", json={"measurements": rows})
        assert located.status_code == 200, located.text
        assert located.json()["model"] == f"models:/heimdall-localizer/{version}"

