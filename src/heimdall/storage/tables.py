"""SQLAlchemy 2 table models, shaped as the seeds' tables.

SQLite is the embedded default; the same models run on PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "SyntheticDataset",
    "SyntheticTrainingSample",
    "TrainingJob",
    "TrainingMetric",
    "ModelRecord",
    "utc_now",
]


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of every Heimdall table."""


class SyntheticDataset(Base):
    """One generated or imported dataset (its shards live in the artifact store)."""

    __tablename__ = "synthetic_datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    num_samples: Mapped[int] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    storage_uri: Mapped[str] = mapped_column(Text)
    network_name: Mapped[str] = mapped_column(String(200))
    seed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    acceptance_rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    split_mode: Mapped[str] = mapped_column(String(16))
    split_counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class SyntheticTrainingSample(Base):
    """Per-sample summary row (the arrays themselves are in the shards)."""

    __tablename__ = "synthetic_training_samples"
    __table_args__ = (UniqueConstraint("dataset_id", "sample_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("synthetic_datasets.id", ondelete="CASCADE"), index=True
    )
    sample_id: Mapped[int] = mapped_column(Integer)
    split: Mapped[str] = mapped_column(String(8))
    tx_lat_deg: Mapped[float | None] = mapped_column(Float, nullable=True)
    tx_lon_deg: Mapped[float | None] = mapped_column(Float, nullable=True)
    tx_power_dbm: Mapped[float | None] = mapped_column(Float, nullable=True)
    num_receivers_heard: Mapped[int] = mapped_column(Integer)
    shard: Mapped[int] = mapped_column(Integer)


class TrainingJob(Base):
    """One training run, its state and where its outputs went."""

    __tablename__ = "training_jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), default="train")
    status: Mapped[str] = mapped_column(String(16), index=True)
    dataset_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    current_epoch: Mapped[int] = mapped_column(Integer, default=0)
    total_epochs: Mapped[int] = mapped_column(Integer, default=0)
    progress_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    checkpoint_dir: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    pause_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class TrainingMetric(Base):
    """Metrics of one epoch of one training job."""

    __tablename__ = "training_metrics"
    __table_args__ = (UniqueConstraint("job_id", "epoch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(
        ForeignKey("training_jobs.id", ondelete="CASCADE"), index=True
    )
    epoch: Mapped[int] = mapped_column(Integer)
    train_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    val_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    val_median_error_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    val_p68_error_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    val_p95_error_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    val_coverage_1sigma: Mapped[float | None] = mapped_column(Float, nullable=True)
    val_coverage_2sigma: Mapped[float | None] = mapped_column(Float, nullable=True)
    learning_rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class ModelRecord(Base):
    """One exported, registered model version."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)
    bundle_uri: Mapped[str] = mapped_column(Text)
    onnx_uri: Mapped[str] = mapped_column(Text)
    dataset_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    job_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    parent_model: Mapped[str | None] = mapped_column(Text, nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
