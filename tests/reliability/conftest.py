"""Fixtures for the reliability tests: the uvicorn + Celery stack of tests/service, reused.

`tests/service/test_services.py` owns the `Stack` (API and worker processes on one
HEIMDALL_HOME and a real Redis); it is loaded from there rather than copied.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
WORKER = ["-c", "from heimdall.worker import main; main()"]


def _load_services_module() -> ModuleType:
    path = REPO / "tests" / "service" / "test_services.py"
    spec = importlib.util.spec_from_file_location("heimdall_tests_service_stack", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


services = _load_services_module()
Stack = services.Stack
AUTH = services.AUTH
require_env = services._required
wait_for_job = services._wait


def start_api(stack: Stack) -> None:
    stack.start(
        "api",
        ["-m", "uvicorn", "--factory", "heimdall.service.app:create_app", "--host", "127.0.0.1",
         "--port", str(stack.port), "--log-level", "warning", "--no-access-log"],
    )


def wait_healthy(client: httpx.Client, stack: Stack, workers: int, timeout_s: float = 120) -> None:
    """Until /health reports the broker and at least `workers` Celery workers."""
    deadline = time.monotonic() + timeout_s
    health: dict = {}
    while time.monotonic() < deadline:
        try:
            health = client.get("/health").json()
            if health.get("worker", {}).get("workers", 0) >= workers:
                return
        except (httpx.TransportError, ValueError):
            pass
        time.sleep(0.5)
    pytest.fail(f"stack not healthy with {workers} workers: {health}\n{stack.diagnostics()}")


@pytest.fixture
def celery_stack(tmp_path: Path) -> Iterator[Stack]:
    """The API under uvicorn and two `heimdall worker` processes on a real Redis (and PostgreSQL)."""
    stack = Stack(tmp_path, require_env("HEIMDALL_TEST_REDIS_URL"), require_env("HEIMDALL_TEST_DATABASE_URL"))
    try:
        stack.start("worker-1", WORKER)
        stack.start("worker-2", WORKER)
        start_api(stack)
        yield stack
    finally:
        stack.stop()


def services_script(command: str) -> None:
    """`bash scripts/services.sh COMMAND` (the services `make test` started in this checkout)."""
    result = subprocess.run(["bash", str(REPO / "scripts" / "services.sh"), command], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def clean_env(home: Path) -> dict[str, str]:
    """The environment of a CLI subprocess: this HEIMDALL_HOME and no other HEIMDALL_/MLflow setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEIMDALL_", "MLFLOW_"))}
    env.update(HEIMDALL_HOME=str(home), PYTHONPATH=str(REPO / "src"))
    return env


class LocalServer:
    """`uvicorn heimdall.service.app:create_app` on 127.0.0.1 over one HEIMDALL_HOME, no broker."""

    def __init__(self, home: Path, log_path: Path, env: dict[str, str] | None = None, workers: int = 1) -> None:
        self.port = services._free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        full_env = clean_env(home) | (env or {})
        handle = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "heimdall.service.app:create_app", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning", "--no-access-log", "--workers", str(workers)],
            cwd=REPO, env=full_env, stdout=handle, stderr=subprocess.STDOUT,
        )
        handle.close()

    def wait_ready(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"server exited {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        pytest.fail(f"server not ready after {timeout_s} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def local_server(tmp_path: Path) -> Iterator[Callable[..., LocalServer]]:
    """Start real API servers (`start(home, env=...)`), each stopped when the test ends."""
    started: list[LocalServer] = []

    def start(home: Path, env: dict[str, str] | None = None) -> LocalServer:
        server = LocalServer(home, tmp_path / f"server-{len(started)}.log", env)
        started.append(server)
        server.wait_ready()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


def copy_home(source: Path, destination: Path) -> Path:
    """A copy of a HEIMDALL_HOME whose MLflow registry points at the copy's own artifacts
    (MLflow stores absolute artifact URIs), so the copy can be changed freely."""
    import shutil
    import sqlite3

    shutil.copytree(source, destination)
    with sqlite3.connect(destination / "mlflow.db") as db:
        for table, column in (("model_versions", "source"), ("model_versions", "storage_location"),
                              ("runs", "artifact_uri"), ("experiments", "artifact_location")):
            try:
                db.execute(f"UPDATE {table} SET {column} = replace({column}, ?, ?)", (str(source), str(destination)))
            except sqlite3.OperationalError:
                continue  # a column this MLflow version does not have
    shutil.rmtree(destination / "cache", ignore_errors=True)
    return destination


@pytest.fixture
def home_copy(trained, tmp_path: Path) -> Callable[[], Path]:  # noqa: ANN001 - the session's trained model
    """`home_copy()`: a private copy of the trained model's home (one per call)."""
    count = 0

    def make() -> Path:
        nonlocal count
        count += 1
        return copy_home(trained.home, tmp_path / f"home-copy-{count}")

    return make


@pytest.fixture
def tools() -> object:
    """The helpers above, for test modules (conftest modules are not importable by name)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        AUTH=AUTH, Stack=Stack, WORKER=WORKER, REPO=REPO, clean_env=clean_env, services_script=services_script,
        wait_for_job=wait_for_job, wait_healthy=wait_healthy, start_api=start_api, require_env=require_env,
    )
