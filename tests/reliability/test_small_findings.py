"""Smaller findings of issue 20: range-checked integers, messages that name a real option."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from heimdall.cli import app as cli_app
from heimdall.pipelines import generate, open_context
from heimdall.service import create_app
from heimdall.service.browser import SCRIPT_HEADERS
from heimdall.settings import Settings


def test_huge_offsets_are_422_not_500(home: Path) -> None:
    generate(open_context(Settings(home=home)), "tiny", 200, seed=1)
    with TestClient(create_app(Settings(home=home)), headers=SCRIPT_HEADERS) as client:
        for path in ("/v1/training/synthetic/datasets/tiny/samples", "/v1/training/jobs"):
            response = client.get(path, params={"offset": "99999999999999999999"})
            assert response.status_code == 422, (path, response.text)
            assert "offset" in response.json()["detail"]
        page = client.get("/v1/training/synthetic/datasets/tiny/samples", params={"offset": 10**15, "limit": 5})
        assert page.status_code == 200 and page.json()["samples"] == []


def test_recordings_given_a_file_says_it_is_not_a_directory(home: Path, tmp_path: Path) -> None:
    not_a_directory = tmp_path / "recording.sigmf-meta"
    not_a_directory.write_text("{}")
    result = CliRunner().invoke(cli_app, ["localize", "--model", str(tmp_path), "--recordings", str(not_a_directory)])
    assert result.exit_code == 1
    assert "is a file, not a directory" in result.output and "not found" not in result.output


def test_missing_frequency_names_the_option_that_gives_it(home: Path, tmp_path: Path) -> None:
    rows = [
        {"sample_id": s, "receiver_id": f"rx{r}", "rx_lat": 45.0 + 0.01 * r, "rx_lon": 7.5 + 0.01 * r,
         "rss_dbm": -80.0 - r, "tx_lat": 45.01, "tx_lon": 7.51}
        for s in range(6) for r in range(4)
    ]
    path = tmp_path / "campaign.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    runner = CliRunner()
    refused = runner.invoke(cli_app, ["import-measurements", str(path), "--name", "camp", "--split-mode", "random"])
    assert refused.exit_code == 1
    assert "--frequency-hz" in refused.output and "frequency_hz column" in refused.output
    accepted = runner.invoke(cli_app, ["import-measurements", str(path), "--name", "camp", "--split-mode", "random",
                                       "--frequency-hz", "433.92e6", "--json"])
    assert accepted.exit_code == 0, accepted.output
    shown = runner.invoke(cli_app, ["datasets", "show", "camp", "--json"])
    assert '"frequency_hz": 433920000.0' in shown.output


@pytest.mark.parametrize("value", ["0", "-5", "nan"])
def test_frequency_option_is_checked(home: Path, tmp_path: Path, value: str) -> None:
    path = tmp_path / "c.csv"
    pd.DataFrame([{"sample_id": 1, "receiver_id": "a", "rx_lat": 45.0, "rx_lon": 7.0, "rss_dbm": -80.0,
                   "tx_lat": 45.0, "tx_lon": 7.1}]).to_csv(path, index=False)
    result = CliRunner().invoke(cli_app, ["import-measurements", str(path), "--name", "c", f"--frequency-hz={value}"])
    assert result.exit_code == 1 and "--frequency-hz must be a positive number" in result.output


def test_mlflow_download_bars_are_off(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from heimdall.tracking import Tracker

    for name in ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"):
        monkeypatch.setenv(name, "unset")
        monkeypatch.delenv(name)
    Tracker(Settings(home=home))
    assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "3"


def test_localize_queue_is_bounded(home: Path) -> None:
    """Beyond `max_queued_localize` requests at once: 503 with Retry-After, not an endless line."""
    import anyio

    from heimdall.service.middleware import QueueLimitMiddleware

    release = anyio.Event()
    seen: list[int] = []

    async def slow_app(scope, receive, send) -> None:  # noqa: ANN001
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    limited = QueueLimitMiddleware(slow_app, max_in_flight=2, paths=frozenset({"/v1/localize"}))

    async def call(path: str) -> None:
        messages: list[dict] = []

        async def send(message: dict) -> None:
            messages.append(message)

        async def receive() -> dict:
            return {"type": "http.request", "body": b""}

        await limited({"type": "http", "path": path, "method": "POST", "headers": []}, receive, send)
        seen.append(messages[0]["status"])
        if messages[0]["status"] == 503:
            assert (b"retry-after", b"1") in messages[0]["headers"]

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(3):
                group.start_soon(call, "/v1/localize")
            await anyio.sleep(0.05)
            assert seen == [503] and limited.in_flight == 2
            release.set()
        assert limited.in_flight == 0

    anyio.run(main)
    assert sorted(seen) == [200, 200, 503]
    assert Settings(home=home).max_queued_localize == 256


def test_serve_on_all_interfaces_warns_about_token_and_hosts(
    home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import uvicorn

    from heimdall import logging_setup
    from heimdall.service import server

    calls: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append(options))
    monkeypatch.setattr(logging_setup, "configure_logging", lambda level: None)
    server.serve(host="0.0.0.0", port=8999, settings=Settings(home=home, trusted_hosts=["localhost"]))
    assert calls and calls[0]["host"] == "0.0.0.0"
    assert "without HEIMDALL_API_TOKEN" in caplog.text and "HEIMDALL_TRUSTED_HOSTS names only loopback" in caplog.text
    caplog.clear()
    server.serve(host="127.0.0.1", port=8999, settings=Settings(home=home))
    assert caplog.text == ""


def test_unreachable_database_tracking_store_is_one_line(tmp_path: Path) -> None:
    """A PostgreSQL MLflow URI on a closed port: one line naming the setting, at once (MLflow alone retries for minutes)."""
    import os
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends
    measurements = tmp_path / "m.csv"
    measurements.write_text("sample_id,receiver_id,rx_lat,rx_lon,rss_dbm\n1,a,45,9,-80\n1,b,45.01,9,-90\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEIMDALL_")}
    env.update(HEIMDALL_HOME=str(tmp_path / "home"),
               HEIMDALL_MLFLOW_TRACKING_URI=f"postgresql+psycopg://user:secret@127.0.0.1:{port}/mlflow")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", "from heimdall.cli import app; app()", "localize", "--model",
         "models:/heimdall-localizer/1", "--measurements", str(measurements)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "HEIMDALL_MLFLOW_TRACKING_URI" in lines[0] and "secret" not in lines[0]
    assert "Traceback" not in done.stderr and time.monotonic() - started < 60


@pytest.mark.parametrize(("value", "fragment"), [("868.1", "868.1 reads as MHz: write 868100000"),
                                                 ("2e12", "no radio carrier (1 MHz to 100 GHz)")])
def test_a_carrier_in_the_wrong_unit_is_refused_before_anything_is_written(
    home: Path, tmp_path: Path, value: str, fragment: str
) -> None:
    path = tmp_path / "c.csv"
    rows = [{"sample_id": s, "receiver_id": f"rx{r}", "rx_lat": 45.0 + 0.01 * r, "rx_lon": 7.5 + 0.01 * r,
             "rss_dbm": -80.0 - r, "tx_lat": 45.01, "tx_lon": 7.51, "frequency_hz": value}
            for s in range(6) for r in range(4)]
    pd.DataFrame(rows).to_csv(path, index=False)
    runner = CliRunner()
    result = runner.invoke(cli_app, ["import-measurements", str(path), "--name", "c"])
    assert result.exit_code == 1 and fragment in result.output
    assert not (home / "artifacts" / "datasets" / "c").exists()
    # The option is held to the same range as the column.
    result = runner.invoke(cli_app, ["import-measurements", str(path), "--name", "c", "--frequency-hz", "868.1"])
    assert result.exit_code == 1 and "868.1 reads as MHz" in result.output
