"""Initial schema: the seeds' tables, receiver networks and imported measurements.

Revision ID: 0001
Revises:
Create Date: 2025-11-22

The five seed tables match `heimdall.storage.tables` column for column (a test compares
them). `receiver_networks`, `receivers` and `measurements` have no ORM model yet.

On PostgreSQL every table lives in the schema `heimdall`. Where the TimescaleDB extension
is installed, or available and creatable, `synthetic_training_samples` and
`training_metrics` become hypertables. A hypertable needs its time column in every unique
index, so there (and only there) the primary key is `(id, <time>)`, the unique constraint
gains the time column, and `synthetic_training_samples` gains a `created_at` column filled
by the server. `id` stays unique in practice (a sequence fills it) and the ORM, which knows
only `id`, works unchanged.

A database created by `Base.metadata.create_all` before migrations existed is adopted:
tables already there are left as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("heimdall.storage.migrate")

SCHEMA = "heimdall"
HYPERTABLES = {"synthetic_training_samples": "created_at", "training_metrics": "recorded_at"}
# Dropped children first.
TABLES = (
    "measurements",
    "receivers",
    "receiver_networks",
    "models",
    "training_metrics",
    "training_jobs",
    "synthetic_training_samples",
    "synthetic_datasets",
)


def _schema() -> str | None:
    return SCHEMA if op.get_bind().dialect.name == "postgresql" else None


def _ref(table: str, column: str = "id") -> str:
    schema = _schema()
    return f"{schema}.{table}.{column}" if schema else f"{table}.{column}"


def _timescale() -> bool:
    """Whether TimescaleDB is usable here (creating the extension when it is only available)."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    if bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")).scalar():
        return True
    if not bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")).scalar():
        return False
    try:
        # A savepoint: a refused CREATE EXTENSION (not preloaded, not allowed) must not abort
        # the migration's transaction.
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS timescaledb"))
    except sa.exc.DBAPIError as exc:
        log.info("TimescaleDB is available but cannot be enabled: %s", str(exc.orig).splitlines()[0])
        return False
    return True


def _create_table(name: str, *items: sa.SchemaItem) -> bool:
    """Create `name` unless it exists already; return whether it was created."""
    schema = _schema()
    if sa.inspect(op.get_bind()).has_table(name, schema=schema):
        log.info("table %s exists already; adopting it as it is", name)
        return False
    op.create_table(name, *items, schema=schema)
    return True


def _index(name: str, table: str, columns: list[str], unique: bool = False) -> None:
    op.create_index(op.f(name), table, columns, unique=unique, schema=_schema())


def _tz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    schema = _schema()
    if schema is not None:
        op.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
    timescale = _timescale()
    if schema is not None:
        if timescale:
            log.info("TimescaleDB present: synthetic_training_samples and training_metrics are hypertables")
        else:
            log.info("TimescaleDB not available: synthetic_training_samples and training_metrics are plain tables")

    if _create_table(
        "synthetic_datasets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("num_samples", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("storage_uri", sa.Text(), nullable=False),
        sa.Column("network_name", sa.String(200), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("acceptance_rate", sa.Float(), nullable=True),
        sa.Column("split_mode", sa.String(16), nullable=False),
        sa.Column("split_counts", sa.JSON(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("created_at", _tz(), nullable=False),
    ):
        _index("ix_synthetic_datasets_name", "synthetic_datasets", ["name"], unique=True)

    samples_time = HYPERTABLES["synthetic_training_samples"]
    if _create_table(
        "synthetic_training_samples",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "dataset_id",
            sa.Integer(),
            sa.ForeignKey(_ref("synthetic_datasets"), ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("sample_id", sa.Integer(), nullable=False),
        sa.Column("split", sa.String(8), nullable=False),
        sa.Column("tx_lat_deg", sa.Float(), nullable=True),
        sa.Column("tx_lon_deg", sa.Float(), nullable=True),
        sa.Column("tx_power_dbm", sa.Float(), nullable=True),
        sa.Column("num_receivers_heard", sa.Integer(), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        *(
            (
                sa.Column(samples_time, _tz(), primary_key=True, server_default=sa.func.now(), nullable=False),
                sa.UniqueConstraint("dataset_id", "sample_id", samples_time),
            )
            if timescale
            else (sa.UniqueConstraint("dataset_id", "sample_id"),)
        ),
    ):
        _index(
            "ix_synthetic_training_samples_dataset_id", "synthetic_training_samples", ["dataset_id"]
        )
        if timescale:
            _hypertable("synthetic_training_samples", samples_time)

    if _create_table(
        "training_jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("dataset_name", sa.String(200), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("current_epoch", sa.Integer(), nullable=False),
        sa.Column("total_epochs", sa.Integer(), nullable=False),
        sa.Column("progress_message", sa.Text(), nullable=True),
        sa.Column("mlflow_run_id", sa.String(64), nullable=True),
        sa.Column("checkpoint_dir", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("pause_requested", sa.Boolean(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("created_at", _tz(), nullable=False),
        sa.Column("started_at", _tz(), nullable=True),
        sa.Column("finished_at", _tz(), nullable=True),
    ):
        _index("ix_training_jobs_status", "training_jobs", ["status"])

    metrics_time = HYPERTABLES["training_metrics"]
    if _create_table(
        "training_metrics",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "job_id",
            sa.String(36),
            sa.ForeignKey(_ref("training_jobs"), ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("train_loss", sa.Float(), nullable=True),
        sa.Column("val_loss", sa.Float(), nullable=True),
        sa.Column("val_median_error_m", sa.Float(), nullable=True),
        sa.Column("val_p68_error_m", sa.Float(), nullable=True),
        sa.Column("val_p95_error_m", sa.Float(), nullable=True),
        sa.Column("val_coverage_1sigma", sa.Float(), nullable=True),
        sa.Column("val_coverage_2sigma", sa.Float(), nullable=True),
        sa.Column("learning_rate", sa.Float(), nullable=True),
        *(
            (
                sa.Column(metrics_time, _tz(), primary_key=True, server_default=sa.func.now(), nullable=False),
                sa.UniqueConstraint("job_id", "epoch", metrics_time),
            )
            if timescale
            else (
                sa.Column(metrics_time, _tz(), nullable=False),
                sa.UniqueConstraint("job_id", "epoch"),
            )
        ),
    ):
        _index("ix_training_metrics_job_id", "training_metrics", ["job_id"])
        if timescale:
            _hypertable("training_metrics", metrics_time)

    if _create_table(
        "models",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("bundle_uri", sa.Text(), nullable=False),
        sa.Column("onnx_uri", sa.Text(), nullable=False),
        sa.Column("dataset_name", sa.String(200), nullable=True),
        sa.Column("job_id", sa.String(36), nullable=True),
        sa.Column("mlflow_run_id", sa.String(64), nullable=True),
        sa.Column("parent_model", sa.Text(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("created_at", _tz(), nullable=False),
        sa.UniqueConstraint("name", "version"),
    ):
        _index("ix_models_name", "models", ["name"])

    _create_table(
        "receiver_networks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("frequency_hz", sa.Float(), nullable=False),
        sa.Column("bandwidth_hz", sa.Float(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("created_at", _tz(), nullable=False, server_default=sa.func.now()),
    )

    if _create_table(
        "receivers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "network_id",
            sa.Integer(),
            sa.ForeignKey(_ref("receiver_networks"), ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("receiver_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("lat_deg", sa.Float(), nullable=False),
        sa.Column("lon_deg", sa.Float(), nullable=False),
        sa.Column("alt_m", sa.Float(), nullable=False, server_default=sa.text("0")),
        sa.UniqueConstraint("network_id", "receiver_id"),
    ):
        _index("ix_receivers_network_id", "receivers", ["network_id"])

    if _create_table(
        "measurements",
        # Imported measurements can run to many millions of rows: 64-bit ids on PostgreSQL
        # (SQLite's INTEGER PRIMARY KEY is already 64-bit and must stay plain INTEGER).
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column(
            "dataset_id",
            sa.Integer(),
            sa.ForeignKey(_ref("synthetic_datasets"), ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("sample_id", sa.String(200), nullable=False),
        sa.Column("timestamp", _tz(), nullable=True),
        sa.Column("receiver_id", sa.String(64), nullable=False),
        sa.Column("rx_lat_deg", sa.Float(), nullable=False),
        sa.Column("rx_lon_deg", sa.Float(), nullable=False),
        sa.Column("rx_alt_m", sa.Float(), nullable=True),
        sa.Column("rss_dbm", sa.Float(), nullable=True),
        sa.Column("snr_db", sa.Float(), nullable=True),
        sa.Column("frequency_hz", sa.Float(), nullable=True),
        sa.Column("tx_lat_deg", sa.Float(), nullable=True),
        sa.Column("tx_lon_deg", sa.Float(), nullable=True),
    ):
        _index("ix_measurements_dataset_id_sample_id", "measurements", ["dataset_id", "sample_id"])


def _hypertable(table: str, time_column: str) -> None:
    op.execute(
        sa.text(
            f"SELECT create_hypertable('{SCHEMA}.{table}', '{time_column}', "
            "if_not_exists => TRUE, migrate_data => TRUE)"
        )
    )


def downgrade() -> None:
    schema = _schema()
    existing = set(sa.inspect(op.get_bind()).get_table_names(schema=schema))
    for name in TABLES:
        if name in existing:
            op.drop_table(name, schema=schema)
