"""The job context: settings, database, artifact store and MLflow, built once per entry point."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from heimdall.settings import Settings
from heimdall.storage.artifacts import LocalStore
from heimdall.storage.database import Database
from heimdall.tracking import Tracker

__all__ = ["Context", "open_context"]


@dataclass
class Context:
    """What every job needs: settings, database, artifact store, MLflow (lazily)."""

    settings: Settings
    db: Database
    store: LocalStore
    _tracker: Tracker | None = field(default=None, repr=False)

    @property
    def tracker(self) -> Tracker:
        if self._tracker is None:
            self._tracker = Tracker(self.settings)
        return self._tracker

    @property
    def staging_dir(self) -> Path:
        return self.settings.home / "staging"


def open_context(settings: Settings) -> Context:
    """Create the home directory and database schema if needed."""
    settings.home.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    db.create_schema()
    return Context(settings=settings, db=db, store=LocalStore(settings.resolved_artifacts_dir))
