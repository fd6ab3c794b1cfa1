"""Job state in the database: queued -> running -> completed | failed | cancelled."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from heimdall.errors import NotFoundError
from heimdall.storage.database import Database
from heimdall.storage.tables import TrainingJob, TrainingMetric, utc_now

__all__ = ["JobStatus", "create_job", "start_job", "record_epoch", "finish_job", "get_job", "job_metrics"]

JobStatus = Literal["queued", "running", "paused", "completed", "failed", "cancelled"]


def create_job(db: Database, kind: str, dataset_name: str | None, params: dict[str, Any], total_epochs: int = 0) -> str:
    """Insert a queued job; return its id."""
    job_id = str(uuid.uuid4())
    with db.session() as session:
        session.add(
            TrainingJob(
                id=job_id,
                kind=kind,
                status="queued",
                dataset_name=dataset_name,
                params=params,
                total_epochs=total_epochs,
            )
        )
    return job_id


def _job(session: Any, job_id: str) -> TrainingJob:
    job = session.get(TrainingJob, job_id)
    if job is None:
        raise NotFoundError(f"job {job_id!r} not found")
    return job


def start_job(db: Database, job_id: str, **fields: Any) -> None:
    """Mark a job running and store fields such as `mlflow_run_id` or `checkpoint_dir`."""
    with db.session() as session:
        job = _job(session, job_id)
        job.status = "running"
        job.started_at = job.started_at or utc_now()
        for key, value in fields.items():
            setattr(job, key, value)


def record_epoch(db: Database, job_id: str, epoch: int, metrics: dict[str, float]) -> None:
    """Store one epoch's metrics (replacing a row left by an interrupted run) and progress."""
    known = {c.name for c in TrainingMetric.__table__.columns}
    values = {k: v for k, v in metrics.items() if k in known}
    with db.session() as session:
        job = _job(session, job_id)
        existing = session.query(TrainingMetric).filter_by(job_id=job_id, epoch=epoch).one_or_none()
        if existing is None:
            session.add(TrainingMetric(job_id=job_id, epoch=epoch, **values))
        else:
            for key, value in values.items():
                setattr(existing, key, value)
        job.current_epoch = epoch + 1
        job.progress_message = f"epoch {epoch + 1}/{job.total_epochs}"


def finish_job(db: Database, job_id: str, status: JobStatus, error: str | None = None) -> None:
    """Set a terminal status."""
    with db.session() as session:
        job = _job(session, job_id)
        job.status = status
        job.error = error
        job.finished_at = utc_now()


def get_job(db: Database, job_id: str) -> TrainingJob:
    """The job row (detached)."""
    with db.session() as session:
        return _job(session, job_id)


def job_metrics(db: Database, job_id: str) -> list[TrainingMetric]:
    """Epoch rows of a job, in epoch order."""
    with db.session() as session:
        return list(session.query(TrainingMetric).filter_by(job_id=job_id).order_by(TrainingMetric.epoch))
