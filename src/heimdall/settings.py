"""The one place Heimdall reads its environment.

Each entry point (CLI, API, worker) builds one `Settings` and passes it down; nothing else
reads environment variables. With no variables set everything lives under
`HEIMDALL_HOME` (default `./.heimdall`): SQLite database, local artifact store, MLflow
tracking in SQLite with local artifacts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Runtime configuration, from `HEIMDALL_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="HEIMDALL_", extra="ignore")

    home: Path = Field(default=Path(".heimdall"), description="Root of all local state")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default SQLite under home"
    )
    artifacts_dir: Path | None = Field(
        default=None, description="Local artifact store root; default home/artifacts"
    )
    # Only HEIMDALL_MLFLOW_TRACKING_URI: MLflow itself writes MLFLOW_TRACKING_URI into the
    # environment whenever a run starts, so reading it would carry one home's store into
    # the next Settings built in the same process.
    mlflow_tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI; default SQLite under home"
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3/MinIO endpoint; when set, artifacts go to S3 instead of disk"
    )
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_region: str = "us-east-1"
    s3_bucket_prefix: str = Field(default="heimdall", description="Buckets are PREFIX-datasets, PREFIX-models, ...")
    broker_url: str | None = Field(default=None, description="Celery broker (Redis); none = embedded worker")
    api_token: str | None = Field(default=None, description="Bearer token required by the API when set")
    mlflow_experiment: str = "heimdall-localization"
    registered_model_name: str = "heimdall-localizer"
    log_level: str = "WARNING"
    serving_variant: Literal["float", "int8"] = Field(
        default="float", description="Graph the API serves: float (model.onnx) or int8 (model.int8.onnx)"
    )
    shadow_model: str | None = Field(
        default=None, description="Registry reference run beside the served model; logged and counted, never returned"
    )
    canary_model: str | None = Field(default=None, description="Registry reference that answers a share of requests")
    pause_at: str | None = Field(
        default=None,
        description="Crash tests only: a named step (heimdall.pausepoints) where a command writes "
        "HOME/paused-at-STEP and waits to be killed",
    )
    canary_fraction: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Share of default-model requests the canary answers, in [0, 1]"
    )

    trusted_hosts: Annotated[list[str], NoDecode] = Field(
        default=["localhost", "127.0.0.1", "::1"],
        description="Host names the API answers to (comma-separated; '*' = any): refuses DNS rebinding",
    )
    max_queued_localize: int = Field(
        default=256, ge=1, description="Localisation requests one server holds at once (running or waiting); more get 503"
    )
    max_job_samples: int = Field(
        default=1_000_000, ge=1, description="Most samples one generate job submitted through the API may ask for"
    )

    @field_validator("trusted_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("home", mode="after")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        # Absolute so that SQLite and MLflow URIs do not depend on a later chdir.
        return value.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite at `home/heimdall.db`."""
        return self.database_url or f"sqlite:///{self.home / 'heimdall.db'}"

    @property
    def resolved_artifacts_dir(self) -> Path:
        """Root directory of the local artifact store."""
        return (self.artifacts_dir or self.home / "artifacts").expanduser().resolve()

    @property
    def resolved_mlflow_tracking_uri(self) -> str:
        """MLflow tracking URI, defaulting to SQLite at `home/mlflow.db`."""
        return self.mlflow_tracking_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def mlflow_artifact_location(self) -> str:
        """Where MLflow stores run artifacts: the `PREFIX-mlflow` bucket with S3, else local."""
        if self.s3_endpoint_url:
            return f"s3://{self.s3_bucket_prefix}-mlflow"
        return (self.home / "mlruns").as_uri()

    def mlflow_environment(self) -> dict[str, str]:
        """The S3 settings as the environment variables MLflow reads (empty without S3)."""
        if not self.s3_endpoint_url:
            return {}
        environment = {"MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint_url, "AWS_DEFAULT_REGION": self.s3_region}
        if self.s3_access_key_id:
            environment["AWS_ACCESS_KEY_ID"] = self.s3_access_key_id
        if self.s3_secret_access_key:
            environment["AWS_SECRET_ACCESS_KEY"] = self.s3_secret_access_key
        return environment

    def apply_mlflow_environment(self) -> None:
        """Hand the S3 settings to MLflow, which reads them only from the environment.

        Also, unless set already: no MLflow download progress bars (they would fill a
        server's log), and a tracking server that does not answer is given up on after 3
        retries about 7 s in all (MLflow's default, 7 retries with doubling waits, keeps a
        command silent for minutes).
        """
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ.update(self.mlflow_environment())

    @property
    def checkpoints_dir(self) -> Path:
        """Directory holding training checkpoints, one sub-directory per job."""
        return self.home / "checkpoints"

    @property
    def reports_dir(self) -> Path:
        """Directory holding evaluation reports."""
        return self.home / "reports"

    @property
    def model_cache_dir(self) -> Path:
        """Where bundles fetched from the registry are unpacked."""
        return self.home / "cache" / "models"
