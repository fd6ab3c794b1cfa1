"""The job context: settings, database, artifact store and MLflow, built once per entry point."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from heimdall.extras import require
from heimdall.pausepoints import configure as configure_pause
from heimdall.settings import Settings
from heimdall.storage.artifacts import ArtifactStore, LocalStore
from heimdall.storage.database import Database
from heimdall.tracking import Tracker

__all__ = ["Context", "open_context", "open_store"]


@dataclass
class Context:
    """What every job needs: settings, database, artifact store, MLflow (lazily)."""

    settings: Settings
    db: Database
    store: ArtifactStore
    _tracker: Tracker | None = field(default=None, repr=False)

    @property
    def tracker(self) -> Tracker:
        if self._tracker is None:
            self._tracker = Tracker(self.settings)
        return self._tracker

    def close(self) -> None:
        """Release database connections (ours and MLflow's); later use reconnects."""
        if self._tracker is not None:
            self._tracker.close()
            self._tracker = None
        self.db.dispose()

    @property
    def staging_dir(self) -> Path:
        return self.settings.home / "staging"


def open_context(settings: Settings) -> Context:
    """Create the home directory and database schema if needed."""
    settings.home.mkdir(parents=True, exist_ok=True)
    configure_pause(settings.pause_at, settings.home)
    db = Database(settings.resolved_database_url)
    db.create_schema()
    return Context(settings=settings, db=db, store=open_store(settings))


def open_store(settings: Settings) -> ArtifactStore:
    """Local directory by default; S3/MinIO when an endpoint is configured."""
    if settings.s3_endpoint_url is None:
        return LocalStore(settings.resolved_artifacts_dir)
    require("s3", "HEIMDALL_S3_ENDPOINT_URL (S3 artifact store)")
    from heimdall.storage.s3 import S3Store

    store = S3Store(
        endpoint_url=settings.s3_endpoint_url,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=settings.s3_secret_access_key,
        region=settings.s3_region,
        bucket_prefix=settings.s3_bucket_prefix,
        cache_dir=settings.home / "cache" / "s3",
    )
    store.check()  # a ConfigError at start, not mid-job
    return store
