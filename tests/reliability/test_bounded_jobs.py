"""Bounded work (issue 20, finding 4), against a real server on 127.0.0.1.

Reported: `POST .../generate {"num_samples": 5000000}` was accepted and could not be
cancelled while it wrote; meanwhile `GET /v1/training/jobs/{id}` answered 500
(OperationalError) and CLI commands failed with "database is locked".
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from heimdall.pipelines import generate, open_context
from heimdall.service.browser import SCRIPT_HEADERS
from heimdall.settings import Settings

GENERATE = "/v1/training/synthetic/generate"
CLI = "from heimdall.cli import main; main()"


def _poll_until(client: httpx.Client, job_id: str, states: set[str], timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    job: dict = {}
    while time.monotonic() < deadline:
        job = client.get(f"/v1/training/jobs/{job_id}").json()
        if job["status"] in states:
            return job
        time.sleep(0.2)
    pytest.fail(f"job {job_id} is {job.get('status')} after {timeout_s} s, waiting for {states}")


def test_sample_limit_is_enforced_and_configurable(tmp_path: Path, local_server) -> None:  # noqa: ANN001
    server = local_server(tmp_path / "home")
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        refused = client.post(GENERATE, json={"name": "huge", "num_samples": 5_000_000})
        assert refused.status_code == 400
        assert "limit of 1000000 per job (HEIMDALL_MAX_JOB_SAMPLES)" in refused.json()["detail"]
    small = local_server(tmp_path / "home2", env={"HEIMDALL_MAX_JOB_SAMPLES": "500"})
    with httpx.Client(base_url=small.base_url, timeout=30) as client:
        assert client.post(GENERATE, json={"name": "over", "num_samples": 501}).status_code == 400
        accepted = client.post(GENERATE, json={"name": "under", "num_samples": 500})
        assert accepted.status_code == 202
        assert _poll_until(client, accepted.json()["job_id"], {"completed"})["result"]["samples"] == 500


def test_running_generation_cancels_while_readers_never_see_500(tmp_path: Path, local_server) -> None:  # noqa: ANN001
    home = tmp_path / "home"
    server = local_server(home)
    statuses: Counter[int] = Counter()
    stop = threading.Event()

    def reader(job_id: str) -> None:
        with httpx.Client(base_url=server.base_url, timeout=60) as client:
            while not stop.is_set():
                for path in (f"/v1/training/jobs/{job_id}", "/v1/training/jobs", "/v1/training/synthetic/datasets"):
                    statuses[client.get(path).status_code] += 1

    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        job_id = client.post(GENERATE, json={"name": "long", "num_samples": 1_000_000}).json()["job_id"]
        _poll_until(client, job_id, {"running"})
        threads = [threading.Thread(target=reader, args=(job_id,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            deadline = time.monotonic() + 60
            while client.get(f"/v1/training/jobs/{job_id}").json()["progress"]["current"] == 0:
                assert time.monotonic() < deadline, "the generation reported no progress"
                time.sleep(0.2)
            cancel = client.post(f"/v1/training/jobs/{job_id}/cancel", headers=SCRIPT_HEADERS)
            assert cancel.status_code == 202 and cancel.json()["cancel_requested"]
            asked_s = time.monotonic()
            job = _poll_until(client, job_id, {"cancelled", "completed", "failed"}, timeout_s=30)
            stopped_after_s = time.monotonic() - asked_s
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
        assert job["status"] == "cancelled", job
        assert stopped_after_s < 10
        assert job["progress"]["current"] < 1_000_000
        # Nothing half-made is left: no dataset, no staging; the name can be used again.
        assert client.get("/v1/training/synthetic/datasets/long").status_code == 404
        assert not (home / "staging" / "long").exists()
    assert statuses and set(statuses) == {200}, statuses


def test_reads_and_cli_commands_proceed_during_a_long_write(tmp_path: Path, local_server) -> None:  # noqa: ANN001
    """Another process holds SQLite's write lock for 4 s: API reads answer at once (WAL), and a
    CLI write waits its turn (busy timeout) instead of failing with "database is locked"."""
    home = tmp_path / "home"
    generate(open_context(Settings(home=home)), "seed", 300, seed=1)
    server = local_server(home)
    locked, release = threading.Event(), threading.Event()

    def hold_write_lock() -> None:
        connection = sqlite3.connect(home / "heimdall.db", timeout=30, isolation_level=None)
        connection.execute("BEGIN EXCLUSIVE")
        connection.execute("UPDATE synthetic_datasets SET description = 'held' WHERE name = 'seed'")
        locked.set()
        release.wait(4.0)
        connection.execute("COMMIT")
        connection.close()

    holder = threading.Thread(target=hold_write_lock)
    holder.start()
    try:
        assert locked.wait(30)
        with httpx.Client(base_url=server.base_url, timeout=60) as client:
            started = time.monotonic()
            listing = client.get("/v1/training/synthetic/datasets")
            jobs = client.get("/v1/training/jobs")
            read_s = time.monotonic() - started
        assert listing.status_code == 200 and jobs.status_code == 200
        assert read_s < 2.0, f"reads waited {read_s:.1f} s for the writer"
        cli = subprocess.run(
            [sys.executable, "-c", CLI, "datasets", "export", "seed", "-o", str(tmp_path / "seed.csv")],
            env=_env(home), capture_output=True, text=True, timeout=120,
        )
        assert cli.returncode == 0, cli.stderr
        imported = subprocess.run(
            [sys.executable, "-c", CLI, "import-measurements", str(tmp_path / "seed.csv"), "--name", "again",
             "--split-mode", "random", "--frequency-hz", "145e6", "--json"],
            env=_env(home), capture_output=True, text=True, timeout=120,
        )
        assert imported.returncode == 0, imported.stderr
        assert "database is locked" not in imported.stderr
    finally:
        release.set()
        holder.join(timeout=60)


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEIMDALL_", "MLFLOW_"))}
    env.update(HEIMDALL_HOME=str(home), PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    return env
