"""MLflow: experiments, runs, the model registry. The only module that imports mlflow."""

from __future__ import annotations

import fcntl
import functools
import logging
import re
from pathlib import Path
from typing import Any

from heimdall.errors import ConfigError, NotFoundError
from heimdall.extras import require_database_driver
from heimdall.processes import ctrl_c_deferred
from heimdall.settings import Settings

__all__ = [
    "Tracker",
    "parse_model_reference",
]

log = logging.getLogger(__name__)

#: MLflow error codes of a name, version or alias that does not exist (anything else:
#: the server did not answer properly).
_MISSING_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"})
_REF_ALIAS = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[A-Za-z0-9_-]+)$")
_REF_VERSION = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+|latest)$")


def parse_model_reference(reference: str) -> tuple[str, str | None, str | None]:
    """`models:/NAME@alias` or `models:/NAME/VERSION` -> (name, alias, version)."""
    if match := _REF_ALIAS.match(reference):
        return match["name"], match["alias"], None
    if match := _REF_VERSION.match(reference):
        return match["name"], None, match["version"]
    raise ConfigError(
        f"invalid model reference {reference!r}; expected models:/NAME@ALIAS or models:/NAME/VERSION"
    )


def _probe_database(uri: str) -> None:
    """Connect once to a database tracking store: MLflow itself retries for minutes, silently."""
    from sqlalchemy import create_engine

    engine = create_engine(uri)
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


def _redact_uri(uri: str) -> str:
    """`uri` with its credentials masked."""
    return re.sub(r"//[^/@]*@", "//***@", uri)


@functools.cache
def _interrupt_safe_logger_class() -> type:
    """Lightning's MLFlowLogger with each write finished before a Ctrl-C takes effect.

    Ctrl-C lands wherever training happens to be, often inside a metrics write; left
    half-way, that write's SQLite transaction can hold the lock while the logger marks the
    run failed, and the interrupted command then ends in "database is locked" instead of
    its resume line. Deferring the interrupt to the end of each write costs one write's
    time (milliseconds).
    """
    from lightning.pytorch.loggers import MLFlowLogger

    class InterruptSafeMLFlowLogger(MLFlowLogger):
        def log_hyperparams(self, params: Any) -> None:
            with ctrl_c_deferred():
                super().log_hyperparams(params)

        def log_metrics(self, metrics: Any, step: int | None = None) -> None:
            with ctrl_c_deferred():
                super().log_metrics(metrics, step)

        def finalize(self, status: str = "success") -> None:
            with ctrl_c_deferred():
                super().finalize(status)

    return InterruptSafeMLFlowLogger


class Tracker:
    """MLflow tracking and registry configured from `Settings`."""

    def __init__(self, settings: Settings) -> None:
        import mlflow
        from mlflow import MlflowClient

        # MLflow logs its schema migrations at INFO on every new SQLite store.
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        # urllib3 logs each retry against an unreachable tracking server; the error that
        # follows says it once.
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
        self._mlflow = mlflow
        self.settings = settings
        settings.apply_mlflow_environment()
        self.tracking_uri = settings.resolved_mlflow_tracking_uri
        require_database_driver(self.tracking_uri, "HEIMDALL_MLFLOW_TRACKING_URI")
        settings.home.mkdir(parents=True, exist_ok=True)
        if not self.tracking_uri.startswith("sqlite:///"):
            try:
                if not self.tracking_uri.startswith(("http://", "https://", "file:", "databricks")):
                    _probe_database(self.tracking_uri)
                self.client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
            except Exception as exc:  # noqa: BLE001 - SQLAlchemy, psycopg and MLflow each raise their own
                first = " ".join(str(exc).split())[:200] or type(exc).__name__
                raise ConfigError(
                    f"cannot reach the MLflow tracking store {_redact_uri(self.tracking_uri)} "
                    f"(HEIMDALL_MLFLOW_TRACKING_URI): {first}"
                ) from None
            return
        # MLflow creates and migrates a new SQLite schema when it opens the store; two
        # processes doing so at once (two workers on one home) break each other's
        # migration, so they take turns.
        database = Path(self.tracking_uri.removeprefix("sqlite:///"))
        database.parent.mkdir(parents=True, exist_ok=True)
        with open(database.with_name(database.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
            self.client._get_registry_client().store  # noqa: B018 - opening the store migrates it

    def close(self) -> None:
        """Close MLflow's database connections (its stores keep pooled engines)."""
        stores = [getattr(getattr(self.client, "_tracking_client", None), "store", None)]
        try:
            stores.append(self.client._get_registry_client().store)
        except Exception:  # noqa: BLE001 - no registry store is fine
            log.debug("no registry store to close")
        for store in stores:
            engine = getattr(store, "engine", None)
            if engine is not None:
                engine.dispose()

    def experiment_id(self) -> str:
        """Id of the configured experiment, created on first use."""
        name = self.settings.mlflow_experiment
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        return self.client.create_experiment(name, artifact_location=self.settings.mlflow_artifact_location)

    def lightning_logger(self, run_id: str | None, run_name: str | None) -> Any:
        """A Lightning MLFlowLogger writing to this store (continuing `run_id` if given)."""
        self.experiment_id()
        return _interrupt_safe_logger_class()(
            experiment_name=self.settings.mlflow_experiment,
            tracking_uri=self.tracking_uri,
            run_id=run_id,
            run_name=run_name,
            log_model=False,
        )

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        """Log parameters that are not already on the run."""
        existing = self.client.get_run(run_id).data.params
        for key, value in params.items():
            if key not in existing:
                self.client.log_param(run_id, key, value)

    def log_metrics(self, run_id: str, metrics: dict[str, float], prefix: str = "") -> None:
        """Log final metrics (numbers only; nested values are skipped)."""
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and value == value:
                self.client.log_metric(run_id, f"{prefix}{key}", float(value))

    def log_artifacts(self, run_id: str, directory: Path, artifact_path: str) -> str:
        """Upload `directory` under the run; return its artifact URI."""
        self.client.log_artifacts(run_id, str(directory), artifact_path)
        return f"{self.client.get_run(run_id).info.artifact_uri}/{artifact_path}"

    def set_terminated(self, run_id: str) -> None:
        self.client.set_terminated(run_id)

    def register(
        self,
        name: str,
        source_uri: str,
        run_id: str | None,
        aliases: tuple[str, ...] = (),
        tags: dict[str, str] | None = None,
    ) -> int:
        """Register `source_uri` as a new version of model `name` (with version `tags`); return the version.

        The reserved alias `latest` needs no update: `@latest` always resolves to the
        newest version (see `resolve`), so it moves with every registration.
        """
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException:
            self.client.create_registered_model(name)
        version = self.client.create_model_version(name, source=source_uri, run_id=run_id, tags=tags)
        for alias in aliases:
            self.client.set_registered_model_alias(name, alias, version.version)
        return int(version.version)

    def next_version(self, name: str) -> int:
        """The version number the next registration of `name` will get."""
        return self.latest_version(name) + 1

    def latest_version(self, name: str) -> int:
        """Highest registered version of `name` (0 when none)."""
        return max(self.version_numbers(name), default=0)

    def version_numbers(self, name: str) -> set[int]:
        """Every registered version number of `name`."""
        return {int(v.version) for v in self.client.search_model_versions(f"name='{name}'")}

    def version_tags(self, name: str, key: str) -> dict[int, str]:
        """version -> value of tag `key`, for the versions of `name` that carry it."""
        versions = self.client.search_model_versions(f"name='{name}'")
        return {int(v.version): v.tags[key] for v in versions if key in (v.tags or {})}

    def version_aliases(self, name: str) -> dict[int, list[str]]:
        """version -> its registry aliases (sorted), for the versions of `name` that have any."""
        by_version: dict[int, list[str]] = {}
        for model in self.client.search_registered_models(filter_string=f"name = '{name}'"):
            for alias, version in (model.aliases or {}).items():
                by_version.setdefault(int(version), []).append(alias)
        return {v: sorted(a) for v, a in by_version.items()}

    def resolve(self, reference: str) -> tuple[str, int, str]:
        """A registry reference -> (name, version, source URI).

        MLflow reserves the alias `latest`; `@latest` and `/latest` both mean the newest
        version here.
        """
        from mlflow.exceptions import MlflowException

        name, alias, version = parse_model_reference(reference)
        try:
            if alias is not None and alias.lower() != "latest":
                mv = self.client.get_model_version_by_alias(name, alias)
            else:
                number = self.latest_version(name) if version in (None, "latest") else int(version)
                if number == 0:
                    raise NotFoundError(f"model {name!r} has no registered versions")
                mv = self.client.get_model_version(name, str(number))
        except MlflowException as exc:
            if exc.error_code in _MISSING_CODES:
                raise NotFoundError(f"model reference {reference!r} not found in the registry") from exc
            raise self.unreachable(exc) from exc
        except OSError as exc:
            raise self.unreachable(exc) from exc
        return name, int(mv.version), mv.source

    def unreachable(self, exc: BaseException) -> ConfigError:
        """The one-line error of a registry that does not answer (the URI without credentials)."""
        uri = _redact_uri(self.tracking_uri)
        return ConfigError(
            f"the MLflow tracking server at {uri} (HEIMDALL_MLFLOW_TRACKING_URI) did not answer "
            f"({type(exc).__name__})",
            hint="start the MLflow server, or point HEIMDALL_MLFLOW_TRACKING_URI at one that runs",
        )

    def set_alias(self, name: str, version: int, alias: str) -> None:
        """Point `alias` of `name` at `version`."""
        self.client.set_registered_model_alias(name, alias, str(version))

    def download(self, source_uri: str, destination: Path) -> Path:
        """Fetch a registered bundle's files to `destination`."""
        from mlflow.exceptions import MlflowException

        destination.mkdir(parents=True, exist_ok=True)
        try:
            return Path(self._mlflow.artifacts.download_artifacts(artifact_uri=source_uri, dst_path=str(destination)))
        except MlflowException as exc:
            raise self.unreachable(exc) from exc

    # Hyperparameter search: one parent run per study, each trial's run nested under it.

    def start_run(self, run_name: str, tags: dict[str, str] | None = None) -> str:
        """Create a run in the configured experiment (left open); return its id."""
        run = self.client.create_run(self.experiment_id(), run_name=run_name, tags=tags or {})
        return run.info.run_id

    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        """Set tags on a run (values become strings)."""
        for key, value in tags.items():
            self.client.set_tag(run_id, key, str(value))

    def set_parent(self, run_id: str, parent_run_id: str) -> None:
        """Nest `run_id` under `parent_run_id` (MLflow's own parent tag, shown as a tree)."""
        self.client.set_tag(run_id, "mlflow.parentRunId", parent_run_id)

    def child_run_ids(self, parent_run_id: str) -> list[str]:
        """Ids of the runs nested under `parent_run_id`."""
        runs = self.client.search_runs(
            [self.experiment_id()], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=10_000
        )
        return [run.info.run_id for run in runs]
