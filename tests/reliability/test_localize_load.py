"""`POST /v1/localize` under sustained load: 60 s at the benchmark's concurrency, zero errors."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

log = logging.getLogger(__name__)

#: The benchmark's setting (127 requests/s at p50 15 ms with concurrency 2 on an idle machine).
CONCURRENCY = 2
DURATION_S = 60


@pytest.mark.slow
def test_localize_for_60_s_without_errors(trained, tools, capsys: pytest.CaptureFixture[str]) -> None:
    command = [
        sys.executable, str(tools.REPO / "benchmarks" / "localize_load.py"), "--home", str(trained.home),
        "--concurrency", str(CONCURRENCY), "--duration-s", str(DURATION_S), "--requests", "10000000", "--json",
    ]
    result = subprocess.run(command, cwd=tools.REPO, env=tools.clean_env(trained.home), capture_output=True,
                            text=True, timeout=DURATION_S + 240)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.splitlines()[-1])
    latency = report["latency_ms"]
    summary = (
        f"localize load: {report['requests_ok']} requests in {report['seconds']} s "
        f"({report['requests_per_s']}/s, concurrency {CONCURRENCY}), errors {report['errors']}, "
        f"p50 {latency['p50']} ms, p99 {latency['p99']} ms, max {latency['max']} ms"
    )
    log.warning(summary)
    with capsys.disabled():
        print(f"\n{summary}")
    assert report["errors"] == {}
    assert report["seconds"] >= DURATION_S * 0.95
    # Loose bounds: CI machines are shared and noisy; a broken server fails them by far.
    assert report["requests_per_s"] > 5
    assert latency["p99"] < 1000


#: The reported load: concurrency 50 while a new model became the default.
SWITCH_CONCURRENCY = 50
SWITCH_DURATION_S = 20


@pytest.mark.slow
def test_default_model_switch_under_concurrency_50_without_errors(home_copy, tools) -> None:  # noqa: ANN001
    """Issue 20, finding 7: 3 connections closed without a response, p99 72 s. Now the old
    version answers while the new one loads in the background, then the new one takes over."""
    home = home_copy()
    command = [
        sys.executable, str(tools.REPO / "benchmarks" / "localize_load.py"), "--home", str(home),
        "--concurrency", str(SWITCH_CONCURRENCY), "--duration-s", str(SWITCH_DURATION_S), "--requests", "10000000",
        "--switch-after-s", "3", "--switch-via", "registry", "--json",
    ]
    result = subprocess.run(command, cwd=tools.REPO, env=tools.clean_env(home), capture_output=True,
                            text=True, timeout=SWITCH_DURATION_S + 400)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.splitlines()[-1])
    log.warning("localize across a model switch: %s", report)
    assert report["errors"] == {}
    assert report["switch"]["status"] == 200
    # Both versions answered: the switch happened under load, and nothing was dropped.
    assert report["models"].get("models:/heimdall-localizer/1", 0) > 0
    assert report["models"].get("models:/heimdall-localizer/2", 0) > 0
    assert sum(report["models"].values()) == report["requests_ok"]
    # Loose: at concurrency 50 on two shared cores a request waits ~1 s in line anyway
    # (measured p99 5.3 s); the reported stall was a p99 of 72 s.
    assert report["latency_ms"]["p99"] < 30_000
