"""Alembic migrations: up, down and up again on SQLite and PostgreSQL; ORM parity."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.orm import Session

from heimdall.errors import ConfigError, InputError
from heimdall.storage import migrate
from heimdall.storage.tables import Base, SyntheticDataset, SyntheticTrainingSample, TrainingJob, TrainingMetric

ORM_TABLES = set(Base.metadata.tables)
# Tables the migrations create that have no ORM model (yet): parity cannot cover them.
EXTRA_TABLES = {"receiver_networks", "receivers", "measurements"} - ORM_TABLES
ALL_TABLES = ORM_TABLES | EXTRA_TABLES


def table_names(url: str, schema: str | None = None) -> set[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        return set(sa.inspect(engine).get_table_names(schema=schema))
    finally:
        engine.dispose()


def describe(inspector: sa.Inspector, table: str, schema: str | None) -> dict:
    """Columns (name -> nullable), primary key, foreign keys, unique sets and indexes of a table."""
    return {
        "columns": {c["name"]: c["nullable"] for c in inspector.get_columns(table, schema=schema)},
        "primary_key": sorted(inspector.get_pk_constraint(table, schema=schema)["constrained_columns"]),
        "foreign_keys": sorted(
            (tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]))
            for fk in inspector.get_foreign_keys(table, schema=schema)
        ),
        "unique": sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(table, schema=schema)),
        "indexes": sorted(
            (i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table, schema=schema)
        ),
    }


def describe_orm(table: sa.Table) -> dict:
    indexes = []
    for index in table.indexes:
        indexes.append((index.name, tuple(c.name for c in index.columns), bool(index.unique)))
    return {
        "columns": {c.name: bool(c.nullable) for c in table.columns},
        "primary_key": sorted(c.name for c in table.primary_key.columns),
        "foreign_keys": sorted(
            (
                tuple(fk.parent.name for fk in constraint.elements),
                constraint.referred_table.name,
                tuple(fk.column.name for fk in constraint.elements),
            )
            for constraint in table.foreign_key_constraints
        ),
        "unique": sorted(
            tuple(c.name for c in constraint.columns)
            for constraint in table.constraints
            if isinstance(constraint, sa.UniqueConstraint)
        ),
        "indexes": sorted(indexes),
    }


# --- SQLite --------------------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'db' / 'heimdall.db'}"


def test_upgrade_downgrade_upgrade_on_sqlite(sqlite_url: str) -> None:
    assert migrate.current_revision(sqlite_url) is None
    migrate.upgrade(sqlite_url)
    assert migrate.current_revision(sqlite_url) == migrate.head_revision()
    assert table_names(sqlite_url) == ALL_TABLES | {"alembic_version"}

    migrate.upgrade(sqlite_url)  # already at head: nothing to do
    migrate.downgrade(sqlite_url)
    assert table_names(sqlite_url) == set()
    assert migrate.current_revision(sqlite_url) is None

    migrate.upgrade(sqlite_url)
    assert table_names(sqlite_url) == ALL_TABLES | {"alembic_version"}


def test_orm_and_migrations_declare_the_same_tables(sqlite_url: str) -> None:
    """The shared tables match column for column, so ORM and migrations cannot drift."""
    migrate.upgrade(sqlite_url)
    engine = sa.create_engine(sqlite_url)
    try:
        inspector = sa.inspect(engine)
        assert ORM_TABLES <= set(inspector.get_table_names())
        for name, table in Base.metadata.tables.items():
            assert describe(inspector, name, None) == describe_orm(table), name
        # Alembic's own comparison also checks types; only the tables without ORM model differ.
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diffs = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert _unexplained(diffs) == []


def _unexplained(diffs: list) -> list:
    """Autogenerate differences other than the migration-only tables and the version table."""
    left = []
    for diff in diffs:
        if isinstance(diff, tuple) and diff[0] == "remove_table" and diff[1].name in EXTRA_TABLES | {"alembic_version"}:
            continue
        if isinstance(diff, tuple) and diff[0] == "remove_index" and diff[1].table.name in EXTRA_TABLES:
            continue
        left.append(diff)
    return left


def test_orm_reads_and_writes_a_migrated_sqlite_database(sqlite_url: str) -> None:
    migrate.upgrade(sqlite_url)
    engine = sa.create_engine(sqlite_url, **migrate.engine_options(sqlite_url))
    try:
        with Session(engine) as session:
            _write_rows(session)
        with Session(engine) as session:
            assert session.scalar(sa.select(sa.func.count()).select_from(SyntheticTrainingSample)) == 2
    finally:
        engine.dispose()


def test_upgrade_adopts_a_database_made_by_create_all(sqlite_url: str) -> None:
    engine = sa.create_engine(sqlite_url)
    Path(sqlite_url.removeprefix("sqlite:///")).parent.mkdir(parents=True)
    Base.metadata.create_all(engine)
    engine.dispose()
    migrate.upgrade(sqlite_url)
    assert migrate.current_revision(sqlite_url) == migrate.head_revision()
    assert table_names(sqlite_url) == ALL_TABLES | {"alembic_version"}


def test_schema_only_on_postgresql() -> None:
    assert migrate.schema_for("postgresql+psycopg://u@h/db") == "heimdall"
    assert migrate.schema_for("sqlite:///x.db") is None
    assert migrate.engine_options("sqlite:///x.db") == {}
    assert migrate.engine_options("postgresql://u@h/db") == {
        "execution_options": {"schema_translate_map": {None: "heimdall"}}
    }


def test_unknown_revision_is_an_input_error(sqlite_url: str) -> None:
    with pytest.raises(InputError, match="cannot upgrade"):
        migrate.upgrade(sqlite_url, "9999")


def test_bad_urls_are_config_errors(closed_port: int) -> None:
    with pytest.raises(ConfigError, match="invalid database URL"):
        migrate.upgrade("not a url")
    started = time.monotonic()
    with pytest.raises(ConfigError, match=f"cannot use database postgresql\\+psycopg://u:\\*\\*\\*@127.0.0.1:{closed_port}"):
        migrate.upgrade(f"postgresql+psycopg://u:secret@127.0.0.1:{closed_port}/db?connect_timeout=2")
    assert time.monotonic() - started < 5.0


def _write_rows(session: Session) -> None:
    dataset = SyntheticDataset(
        name="small",
        kind="features",
        num_samples=2,
        storage_uri="s3://heimdall-datasets/small",
        network_name="italy",
        split_mode="random",
        split_counts={"train": 2},
        config={},
    )
    session.add(dataset)
    session.flush()
    session.add_all(
        [
            SyntheticTrainingSample(dataset_id=dataset.id, sample_id=i, split="train", num_receivers_heard=3, shard=0)
            for i in range(2)
        ]
    )
    session.add(TrainingJob(id="job-1", status="queued", params={}))
    session.flush()
    session.add(TrainingMetric(job_id="job-1", epoch=0, train_loss=1.5))
    session.commit()


# --- PostgreSQL ----------------------------------------------------------------------------


@pytest.mark.services
def test_upgrade_downgrade_upgrade_on_postgresql(postgres_database: str) -> None:
    url = postgres_database
    migrate.upgrade(url)
    assert migrate.current_revision(url) == migrate.head_revision()
    assert table_names(url, "heimdall") == ALL_TABLES | {"alembic_version"}
    assert table_names(url, "public") == set()

    migrate.downgrade(url)
    assert migrate.current_revision(url) is None
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        assert "heimdall" not in sa.inspect(engine).get_schema_names()
    finally:
        engine.dispose()

    migrate.upgrade(url)
    assert table_names(url, "heimdall") == ALL_TABLES | {"alembic_version"}


@pytest.mark.services
def test_orm_works_on_postgresql_through_the_schema_translate_map(postgres_database: str) -> None:
    url = postgres_database
    migrate.upgrade(url)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, **migrate.engine_options(url))
    try:
        with Session(engine) as session:
            _write_rows(session)
        with Session(engine) as session:
            assert session.scalar(sa.select(sa.func.count()).select_from(SyntheticTrainingSample)) == 2
            session.delete(session.scalars(sa.select(SyntheticDataset)).one())
            session.commit()
            # ON DELETE CASCADE in the database.
            assert session.scalar(sa.select(sa.func.count()).select_from(SyntheticTrainingSample)) == 0
            assert session.scalar(sa.select(TrainingMetric.train_loss)) == 1.5
    finally:
        engine.dispose()


@pytest.mark.services
def test_orm_and_migrations_agree_on_postgresql(postgres_database: str) -> None:
    url = postgres_database
    migrate.upgrade(url)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            timescale = bool(
                connection.scalar(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"))
            )
            # With `heimdall` first on the search path, autogenerate reads it as the default
            # schema and compares it with the schema-less ORM metadata.
            connection.execute(sa.text("SET search_path TO heimdall"))
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diffs = _unexplained(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()
    if timescale:
        # Hypertables carry their time column in the primary key and unique constraint.
        hypertables = {"synthetic_training_samples", "training_metrics"}
        diffs = [d for d in diffs if not _touches(d, hypertables)]
    assert diffs == []


def _touches(diff: object, tables: set[str]) -> bool:
    text = repr(diff)
    return any(name in text for name in tables)
