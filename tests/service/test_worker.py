"""The Celery app: lazy configuration, task names, settings for a long-running job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_worker_module_reads_no_environment_at_import(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEIMDALL_")}
    env["HEIMDALL_HOME"] = str(tmp_path / "home")
    probe = "import heimdall.worker as w; print('imported')"
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0 and "imported" in result.stdout, result.stderr
    assert not (tmp_path / "home").exists(), "importing the worker must not touch HEIMDALL_HOME"
    env["HEIMDALL_BROKER_URL"] = "redis://127.0.0.1:1/0"  # never contacted
    probe = (
        "import heimdall.worker as w; c = w.celery_app.conf; "
        "print(c.task_acks_late, c.worker_prefetch_multiplier, c.broker_url == __import__('os').environ['HEIMDALL_BROKER_URL']); "
        "print(sorted(n for n in w.celery_app.tasks if n.startswith('heimdall.')))"
    )
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "True 1 True",
        "['heimdall.evaluate', 'heimdall.export', 'heimdall.generate', 'heimdall.train']",
    ]
