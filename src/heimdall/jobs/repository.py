"""The registry repository: every query of the jobs table (`TrainingJob`, with its epoch
rows `TrainingMetric`) and of the models table (`ModelRecord`) lives here; routes,
pipelines, the job system and the serving runtime call these functions (migrations
aside).

Job state in the database, shared by the CLI, the API and every worker:

    queued --claim--> running --> completed | failed | cancelled
                         |  ^
          pause request  v  | resume (back to queued, then claimed again)
                       paused

Every function here is one transaction, retried while a database server restarts
(`retry_disconnects`), so a job outlives a short database outage instead of failing or
being left `running`.

A pause or cancel request on a running job is a flag on its row; the process running the
job polls it (`control_request`) and stops at a safe point. A queued or paused job is
cancelled at once. Progress is `current` of `total` plus a message (epochs for training,
samples for generation).
"""

from __future__ import annotations

import uuid
from typing import Any, Literal, get_args

from sqlalchemy import func, select, update

from heimdall.errors import ConflictError, HeimdallError, InputError, NotFoundError
from heimdall.storage.database import Database, retry_disconnects
from heimdall.storage.tables import ModelRecord, TrainingJob, TrainingMetric, utc_now

__all__ = [
    "JobStatus",
    "JobKind",
    "ControlRequest",
    "ACTIVE",
    "TERMINAL",
    "ConflictError",
    "create_job",
    "claim_job",
    "start_job",
    "record_epoch",
    "set_progress",
    "set_result",
    "finish_job",
    "get_job",
    "job_metrics",
    "latest_metrics",
    "list_jobs",
    "request_pause",
    "request_resume",
    "request_cancel",
    "CANCELLABLE_WHILE_RUNNING",
    "JobCancelled",
    "control_request",
    "merge_params",
    "job_counts",
    "record_model",
    "model_record",
    "model_records",
    "job_model_records",
    "recorded_versions",
]

JobStatus = Literal["queued", "running", "paused", "completed", "failed", "cancelled"]
JobKind = Literal["generate", "train", "export", "evaluate"]
ControlRequest = Literal["pause", "cancel"]
#: Kinds whose running process polls for a cancel request (exports and evaluations are short).
CANCELLABLE_WHILE_RUNNING: frozenset[str] = frozenset({"train", "generate"})

#: States in which a job still holds (or waits for) a worker.
ACTIVE: frozenset[str] = frozenset({"queued", "running"})
#: States a job never leaves.
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled"})




class JobCancelled(HeimdallError):
    """Raised inside a running job when its cancel request is seen; the job ends cancelled."""


def create_job(db: Database, kind: str, dataset_name: str | None, params: dict[str, Any], total_epochs: int = 0) -> str:
    """Insert a queued job; return its id."""
    job_id = str(uuid.uuid4())
    _insert_job(db, job_id, kind, dataset_name, params, total_epochs)
    return job_id


@retry_disconnects
def _insert_job(
    db: Database, job_id: str, kind: str, dataset_name: str | None, params: dict[str, Any], total_epochs: int
) -> None:
    with db.session() as session:
        if session.get(TrainingJob, job_id) is not None:
            return  # a retry after a commit whose acknowledgement was lost
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


def _job(session: Any, job_id: str) -> TrainingJob:
    job = session.get(TrainingJob, job_id)
    if job is None:
        raise NotFoundError(f"job {job_id!r} not found")
    return job


@retry_disconnects
def claim_job(db: Database, job_id: str, allow_running: bool = False) -> bool:
    """Move a queued job to running; False if another process claimed it or it was cancelled.

    One conditional UPDATE, so two workers handed the same job (a redelivered message) never
    both run it. `allow_running` also takes over a running row (the redelivery of an
    idempotent job whose first worker died).
    """
    claimable = ("queued", "running") if allow_running else ("queued",)
    with db.session() as session:
        _job(session, job_id)
        result = session.execute(
            update(TrainingJob)
            .where(TrainingJob.id == job_id, TrainingJob.status.in_(claimable))
            .values(
                status="running",
                started_at=func.coalesce(TrainingJob.started_at, utc_now()),
                error=None,
                finished_at=None,
            )
            .execution_options(synchronize_session=False)
        )
        claimed = result.rowcount == 1
    return claimed


@retry_disconnects
def start_job(db: Database, job_id: str, **fields: Any) -> None:
    """Mark a job running and store fields such as `mlflow_run_id` or `checkpoint_dir`."""
    with db.session() as session:
        job = _job(session, job_id)
        job.status = "running"
        job.started_at = job.started_at or utc_now()
        for key, value in fields.items():
            setattr(job, key, value)


@retry_disconnects
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


@retry_disconnects
def set_progress(db: Database, job_id: str, current: int, total: int | None = None, message: str | None = None) -> None:
    """Progress of a job: `current` of `total` units (epochs, samples) and a short message."""
    with db.session() as session:
        job = _job(session, job_id)
        job.current_epoch = int(current)
        if total is not None:
            job.total_epochs = int(total)
        if message is not None:
            job.progress_message = message


@retry_disconnects
def set_result(db: Database, job_id: str, result: dict[str, Any]) -> None:
    """Store a job's JSON-ready result under `params["result"]` (visible to every process)."""
    with db.session() as session:
        job = _job(session, job_id)
        # A new dict: the JSON column only notices reassignment.
        job.params = {**(job.params or {}), "result": result}


@retry_disconnects
def merge_params(db: Database, job_id: str, values: dict[str, Any]) -> None:
    """Add `values` to a job's `params` (e.g. the id of the export job it started)."""
    with db.session() as session:
        job = _job(session, job_id)
        job.params = {**(job.params or {}), **values}


@retry_disconnects
def finish_job(db: Database, job_id: str, status: JobStatus, error: str | None = None) -> None:
    """Set the status a run ended in (terminal, or paused) and clear the pending requests."""
    if status not in get_args(JobStatus):
        raise InputError(f"unknown job status {status!r}")
    with db.session() as session:
        job = _job(session, job_id)
        job.status = status
        job.error = error
        job.pause_requested = False
        job.cancel_requested = False
        job.finished_at = utc_now() if status in TERMINAL else None
        if status == "paused":
            job.progress_message = f"paused after epoch {job.current_epoch}/{job.total_epochs}"


@retry_disconnects
def get_job(db: Database, job_id: str) -> TrainingJob:
    """The job row (detached)."""
    with db.session() as session:
        return _job(session, job_id)


@retry_disconnects
def job_metrics(db: Database, job_id: str) -> list[TrainingMetric]:
    """Epoch rows of a job, in epoch order."""
    with db.session() as session:
        return list(session.query(TrainingMetric).filter_by(job_id=job_id).order_by(TrainingMetric.epoch))


@retry_disconnects
def latest_metrics(db: Database, job_id: str) -> TrainingMetric | None:
    """The newest epoch row of a job, if any."""
    with db.session() as session:
        return session.scalars(
            select(TrainingMetric).where(TrainingMetric.job_id == job_id).order_by(TrainingMetric.epoch.desc()).limit(1)
        ).one_or_none()


@retry_disconnects
def list_jobs(
    db: Database,
    kind: str | None = None,
    status: str | None = None,
    dataset_name: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[TrainingJob]:
    """Jobs, newest first, optionally filtered by kind, status and dataset."""
    query = select(TrainingJob)
    if kind is not None:
        query = query.where(TrainingJob.kind == kind)
    if status is not None:
        query = query.where(TrainingJob.status == status)
    if dataset_name is not None:
        query = query.where(TrainingJob.dataset_name == dataset_name)
    query = query.order_by(TrainingJob.created_at.desc(), TrainingJob.id).offset(offset).limit(limit)
    with db.session() as session:
        return list(session.scalars(query))


@retry_disconnects
def request_pause(db: Database, job_id: str) -> TrainingJob:
    """Ask a running training job to pause at its next epoch boundary (after its checkpoint)."""
    with db.session() as session:
        job = _job(session, job_id)
        if job.kind != "train":
            raise ConflictError(f"only training jobs can be paused; job {job_id} is a {job.kind} job")
        if job.status != "running":
            raise ConflictError(f"job {job_id} is {job.status}; only a running job can be paused")
        job.pause_requested = True
        return job


@retry_disconnects
def request_resume(db: Database, job_id: str) -> TrainingJob:
    """Queue a paused training job again; the caller dispatches it to a worker."""
    with db.session() as session:
        job = _job(session, job_id)
        if job.status != "paused":
            raise ConflictError(f"job {job_id} is {job.status}; only a paused job can be resumed")
        job.status = "queued"
        job.pause_requested = False
        job.progress_message = f"resume queued at epoch {job.current_epoch}/{job.total_epochs}"
        return job


@retry_disconnects
def request_cancel(db: Database, job_id: str) -> TrainingJob:
    """Cancel a queued or paused job at once; ask a running training job to stop after its
    batch, a running generation after its block of samples."""
    with db.session() as session:
        job = _job(session, job_id)
        if job.status in TERMINAL:
            raise ConflictError(f"job {job_id} is already {job.status}")
        if job.status in ("queued", "paused"):
            job.status = "cancelled"
            job.finished_at = utc_now()
            job.pause_requested = False
        elif job.kind in CANCELLABLE_WHILE_RUNNING:
            job.cancel_requested = True
        else:
            raise ConflictError(f"a running {job.kind} job cannot be interrupted; wait for it to finish")
        return job


@retry_disconnects
def control_request(db: Database, job_id: str) -> ControlRequest | None:
    """What the process running `job_id` should do now: "cancel", "pause" or carry on (None)."""
    with db.session() as session:
        row = session.execute(
            select(TrainingJob.cancel_requested, TrainingJob.pause_requested, TrainingJob.status).where(
                TrainingJob.id == job_id
            )
        ).one_or_none()
    if row is None:
        raise NotFoundError(f"job {job_id!r} not found")
    cancel, pause, status = row
    if cancel or status == "cancelled":
        return "cancel"
    if pause:
        return "pause"
    return None


def job_counts(db: Database) -> dict[str, int]:
    """Number of jobs in each state (every state present, zero when none)."""
    with db.session() as session:
        rows = session.execute(select(TrainingJob.status, func.count()).group_by(TrainingJob.status)).all()
    counts = dict.fromkeys(get_args(JobStatus), 0)
    counts.update({str(status): int(n) for status, n in rows})
    return counts


def record_model(db: Database, **fields: Any) -> None:
    """Insert the models-table row of a published version (`ModelRecord`'s columns)."""
    with db.session() as session:
        session.add(ModelRecord(**fields))


def model_record(db: Database, name: str, version: int) -> ModelRecord | None:
    """The row of model `name` version `version`, if recorded."""
    with db.session() as session:
        return session.scalars(
            select(ModelRecord).where(ModelRecord.name == name, ModelRecord.version == version)
        ).one_or_none()


def model_records(db: Database) -> list[ModelRecord]:
    """Every recorded model version, by name, newest version first."""
    with db.session() as session:
        return list(session.scalars(select(ModelRecord).order_by(ModelRecord.name, ModelRecord.version.desc())))


def job_model_records(db: Database, job_id: str) -> list[ModelRecord]:
    """The model versions exported from job `job_id`'s training, oldest first."""
    with db.session() as session:
        return list(session.scalars(select(ModelRecord).where(ModelRecord.job_id == job_id).order_by(ModelRecord.version)))


def recorded_versions(db: Database, name: str) -> set[int]:
    """The version numbers of model `name` in the models table."""
    with db.session() as session:
        return set(session.scalars(select(ModelRecord.version).where(ModelRecord.name == name)))
