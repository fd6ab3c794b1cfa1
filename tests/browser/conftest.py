"""Headless Chromium with the network disabled: what a user without internet would see.

Chromium (Debian `chromium`) is installed by `scripts/test-tools.sh`, which `make test`
runs; a machine without it skips these tests with that reason.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

_NAMES = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of the browser; skips (with the reason) only when none is installed."""
    for name in _NAMES:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("chromium is not installed (bash scripts/test-tools.sh, run by make test, installs it)")


@pytest.fixture
def dump_dom(chromium: str, tmp_path: Path) -> Callable[[str], str]:
    """Load a URL with every non-loopback request refused and return the DOM after its scripts ran.

    A dead proxy (port 9, discard) takes all traffic except loopback, and every host name
    but 127.0.0.1 resolves to nothing, so a page that needs a CDN renders empty.
    """

    def run(url: str, budget_ms: int = 20_000) -> str:
        command = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--proxy-server=127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            f"--virtual-time-budget={budget_ms}",
            "--dump-dom",
            url,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
        return done.stdout

    return run
