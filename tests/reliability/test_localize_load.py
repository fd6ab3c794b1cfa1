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
