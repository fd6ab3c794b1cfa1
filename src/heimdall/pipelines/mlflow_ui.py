"""`heimdall ui`: the MLflow UI over this HEIMDALL_HOME's runs and model registry.

Runs `mlflow server` (from the `ui` extra: the core install has only mlflow-skinny, which
has no UI) on the same tracking and registry URI as every other command, with the S3
settings Heimdall hands MLflow, so the runs, metrics, artifacts and registered models are
the ones `train` and `export` recorded.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from heimdall.extras import require, require_database_driver
from heimdall.settings import Settings

__all__ = ["DEFAULT_UI_HOST", "DEFAULT_UI_PORT", "MlflowUi", "mlflow_ui", "run_mlflow_ui"]

DEFAULT_UI_HOST = "127.0.0.1"
DEFAULT_UI_PORT = 5000


@dataclass(frozen=True)
class MlflowUi:
    """The server command, its environment and the address to open."""

    command: list[str]
    environment: dict[str, str]
    url: str
    tracking_uri: str


def mlflow_ui(settings: Settings, host: str = DEFAULT_UI_HOST, port: int = DEFAULT_UI_PORT) -> MlflowUi:
    """What to run for the UI of `settings`' MLflow store (ConfigError when the `ui` extra is missing)."""
    require("ui", "heimdall ui (the MLflow UI)")
    uri = settings.resolved_mlflow_tracking_uri
    require_database_driver(uri, "HEIMDALL_MLFLOW_TRACKING_URI")
    settings.home.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        uri,
        "--registry-store-uri",
        uri,
        # New experiments created from the UI store artifacts where Heimdall's do.
        "--default-artifact-root",
        settings.mlflow_artifact_location,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    environment = dict(os.environ)
    environment.update(settings.mlflow_environment())
    return MlflowUi(command=command, environment=environment, url=f"http://{host}:{port}", tracking_uri=uri)


def run_mlflow_ui(ui: MlflowUi) -> int:
    """Run the server until it exits or is interrupted; its exit status (130 on Ctrl-C)."""
    process = subprocess.Popen(ui.command, env=ui.environment)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        return 130
