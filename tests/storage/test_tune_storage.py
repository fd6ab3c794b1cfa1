"""A hyperparameter-search study on PostgreSQL: beside Heimdall's tables, not in their way."""

from __future__ import annotations

import optuna
import pytest
import sqlalchemy as sa

from heimdall.pipelines.tune_study import OPTUNA_SCHEMA, close_storage, open_storage
from heimdall.storage.database import Database
from heimdall.storage.migrate import SCHEMA, current_revision, head_revision

pytestmark = pytest.mark.services


def test_a_study_lives_in_its_own_schema_of_the_heimdall_database(postgres_database: str) -> None:
    database = Database(postgres_database)
    database.create_schema()
    try:
        storages = [open_storage(postgres_database, 1, 3), open_storage(postgres_database, 1, 3)]
        first = optuna.create_study(study_name="s", storage=storages[0])
        first.optimize(lambda trial: trial.suggest_float("x", -1.0, 1.0) ** 2, n_trials=3)
        # Another process (a fresh storage) sees the same study and adds to it.
        second = optuna.load_study(study_name="s", storage=storages[1])
        second.optimize(lambda trial: trial.suggest_float("x", -1.0, 1.0) ** 2, n_trials=1)
        assert len(first.get_trials()) == 4
        for storage in storages:
            close_storage(storage)

        inspector = sa.inspect(database.engine)
        assert {"trials", "studies", "trial_heartbeats", "alembic_version"} <= set(inspector.get_table_names(schema=OPTUNA_SCHEMA))
        assert "trials" not in inspector.get_table_names(schema=SCHEMA)
        # Heimdall's migration history is untouched and can still move forward.
        assert current_revision(postgres_database) == head_revision()
        database.create_schema()
    finally:
        database.dispose()
