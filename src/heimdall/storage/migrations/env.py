"""Alembic environment of Heimdall's migrations (run by `heimdall.storage.migrate`).

`heimdall.storage.migrate` hands over an open connection in `config.attributes["connection"]`
inside a transaction; without one (the `alembic` command line with `sqlalchemy.url` set) an
engine is built from the URL. On PostgreSQL everything, the version table included, lives
in the schema `heimdall`, created here before the version table is needed; concurrent
upgrades (several workers starting at once) are serialised by an advisory lock.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from heimdall.storage.tables import Base

SCHEMA = "heimdall"
# pg_advisory_xact_lock key: the bytes of "heimdall" as a signed 64-bit integer.
_LOCK_KEY = int.from_bytes(b"heimdall", "big", signed=True)

config = context.config


def _run(connection: Connection) -> None:
    schema = SCHEMA if connection.dialect.name == "postgresql" else None
    if schema is not None:
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        connection.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table_schema=schema,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection given and no sqlalchemy.url set")
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    # The initial revision inspects the live database (TimescaleDB, existing tables).
    raise RuntimeError("Heimdall's migrations need a live database; offline (--sql) mode is not supported")
run_migrations_online()
