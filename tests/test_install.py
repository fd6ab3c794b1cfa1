"""The embedded install needs no server packages; a setting that needs one names its extra."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVER_PACKAGES = ("celery", "kombu", "redis", "boto3", "botocore", "psycopg", "flask")

# Runs in a fresh interpreter where the server packages cannot be imported, as on a laptop
# that installed `pip install heimdall` without extras.
_PROBE = r"""
import importlib.abc, json, os, sys
BLOCKED = set(sys.argv[1].split(","))

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
from fastapi.testclient import TestClient
from typer.testing import CliRunner
from heimdall.cli import app
from heimdall.errors import ConfigError
from heimdall.pipelines import generate, open_context
from heimdall.service import create_app
from heimdall.settings import Settings

out = {}
ctx = open_context(Settings())
generate(ctx, "tiny", 300, seed=1)
with TestClient(create_app(Settings())) as client:
    out["health"] = client.get("/health").json()["status"]
out["datasets_list"] = CliRunner().invoke(app, ["datasets", "list"]).exit_code
errors = {}
for extra, env in {
    "server": {"HEIMDALL_BROKER_URL": "redis://127.0.0.1:9/0"},
    "s3": {"HEIMDALL_S3_ENDPOINT_URL": "http://127.0.0.1:9"},
    "postgres": {"HEIMDALL_DATABASE_URL": "postgresql+psycopg://u@127.0.0.1:9/db"},
}.items():
    os.environ.update(env)
    try:
        create_app(Settings())
        errors[extra] = None
    except ConfigError as exc:
        errors[extra] = f"{exc} (hint: {exc.hint})"
    result = CliRunner().invoke(app, ["datasets", "list"])
    errors[extra + "_cli"] = [result.exit_code, result.output]
    for name in env:
        del os.environ[name]
worker = CliRunner().invoke(app, ["worker"])
errors["worker_cli"] = [worker.exit_code, worker.output]
out["errors"] = errors
out["loaded"] = sorted({m.split(".")[0] for m in sys.modules} & BLOCKED)
print(json.dumps(out))
"""


def test_core_dependencies_leave_out_the_server_packages() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"]).lower()
    for name in ("celery", "redis", "boto3", "psycopg", "mlflow=="):
        assert name not in core, f"{name} is a core dependency"
    extras = project["optional-dependencies"]
    assert {"server", "s3", "postgres", "ui", "test"} <= set(extras)
    assert any(d.startswith("mlflow==") for d in extras["ui"])
    makefile = (ROOT / "Makefile").read_text()
    assert "EXTRAS := server,s3,postgres,ui,test" in makefile, "make install installs what make test needs"


@pytest.mark.slow
def test_embedded_path_runs_without_server_packages(home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEIMDALL_", "MLFLOW_"))}
    env["HEIMDALL_HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(SERVER_PACKAGES)], capture_output=True, text=True, env=env, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["health"] == "ok" and out["datasets_list"] == 0
    assert out["loaded"] == []
    for extra, setting in (("server", "HEIMDALL_BROKER_URL"), ("s3", "HEIMDALL_S3_ENDPOINT_URL"), ("postgres", "HEIMDALL_DATABASE_URL")):
        message = out["errors"][extra]
        assert message and setting in message and f"heimdall[{extra}]" in message, message
        if extra == "server":
            continue  # `datasets list` needs no broker; `worker` is checked below
        exit_code, output = out["errors"][extra + "_cli"]
        lines = [line for line in output.splitlines() if line.strip()]
        assert exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: ") and f"heimdall[{extra}]" in lines[0], output
    exit_code, output = out["errors"]["worker_cli"]
    assert exit_code == 1 and output.strip().startswith("error: ") and "heimdall[server]" in output, output
