"""Schema migrations (Alembic), configured in code: no alembic.ini, scripts shipped in the package.

    upgrade(url)             bring the database to the newest revision
    downgrade(url)           back to empty (drops every Heimdall table)
    current_revision(url)    the revision the database is at, None when not migrated

On PostgreSQL everything lives in the schema `heimdall` (`schema_for`); the ORM tables in
`heimdall.storage.tables` carry no schema and reach it through SQLAlchemy's
`schema_translate_map` (`engine_options`):

    create_engine(url, pool_pre_ping=True, **engine_options(url))

On SQLite there is no schema and nothing to translate.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from heimdall.errors import ConfigError, InputError

__all__ = [
    "MIGRATIONS_DIR",
    "SCHEMA",
    "current_revision",
    "downgrade",
    "engine_options",
    "head_revision",
    "schema_for",
    "upgrade",
]

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")
SCHEMA = "heimdall"
VERSION_TABLE = "alembic_version"


def schema_for(database_url: str) -> str | None:
    """The schema Heimdall's tables live in: `heimdall` on PostgreSQL, None elsewhere."""
    try:
        backend = make_url(database_url).get_backend_name()
    except ArgumentError as exc:
        raise ConfigError(f"invalid database URL: {exc}") from None
    return SCHEMA if backend == "postgresql" else None


def engine_options(database_url: str) -> dict[str, Any]:
    """`create_engine` keyword arguments that point the schema-less ORM tables at `schema_for(url)`."""
    schema = schema_for(database_url)
    if schema is None:
        return {}
    return {"execution_options": {"schema_translate_map": {None: schema}}}


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest revision shipped with this version of Heimdall."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise ConfigError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def _safe(database_url: str) -> str:
    try:
        return make_url(database_url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


@contextmanager
def _connection(database_url: str) -> Iterator[Connection]:
    """One connection in one transaction; database failures become one-line `ConfigError`s."""
    try:
        url = make_url(database_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, poolclass=NullPool)
    except (ArgumentError, SQLAlchemyError, ValueError) as exc:
        raise ConfigError(f"invalid database URL {_safe(database_url)}: {exc}") from None
    try:
        with engine.begin() as connection:
            yield connection
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        raise ConfigError(f"cannot use database {_safe(database_url)}: {reason}") from None
    finally:
        engine.dispose()


def _run(database_url: str, action: str, revision: str) -> None:
    config = _config()
    with _connection(database_url) as connection:
        config.attributes["connection"] = connection
        try:
            getattr(command, action)(config, revision)
        except CommandError as exc:
            raise InputError(f"cannot {action} to {revision!r}: {exc}") from None
        if action == "downgrade" and revision == "base":
            _drop_version_table(connection)


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision` (default: the newest)."""
    _run(database_url, "upgrade", revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    """Revert migrations down to `revision`; `base` also drops the version table and, on
    PostgreSQL, the schema `heimdall` when nothing else is left in it."""
    _run(database_url, "downgrade", revision)


def current_revision(database_url: str) -> str | None:
    """The revision the database is at; None when it was never migrated (or fully downgraded)."""
    with _connection(database_url) as connection:
        schema = schema_for(database_url)
        if not sa.inspect(connection).has_table(VERSION_TABLE, schema=schema):
            return None
        context = MigrationContext.configure(connection, opts={"version_table_schema": schema})
        return context.get_current_revision()


def _drop_version_table(connection: Connection) -> None:
    schema = SCHEMA if connection.dialect.name == "postgresql" else None
    table = sa.Table(VERSION_TABLE, sa.MetaData(), schema=schema)
    table.drop(connection, checkfirst=True)
    if schema is None:
        return
    try:
        # RESTRICT: leave the schema if anything not ours was put in it.
        with connection.begin_nested():
            connection.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} RESTRICT"))
    except sa.exc.DBAPIError as exc:
        log.info("schema %s kept: %s", schema, str(exc.orig).splitlines()[0])
