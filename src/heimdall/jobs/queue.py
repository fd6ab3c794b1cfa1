"""Jobs run away from the caller: create the job row, hand it to an executor, run it.

The API (and anything else that wants a job done later) submits through `JobQueue`; the
job's whole state lives in the database (`jobs/repository.py`). Two executors:

- embedded (no `broker_url`): one background thread in this process runs jobs one at a
  time, the worker `heimdall serve` starts for itself;
- Celery (`broker_url` set): the job id goes to the broker by task name and any number of
  `heimdall worker` processes take it.

Both end in `run_job(ctx, job_id)` (`runner.py`), which claims the queued row (so a job never runs twice)
and calls one pipeline. A training job is exported (ONNX bundle, evaluation, registry) by
an export job it creates and runs as its second stage; it completes once its model is
registered, so a `completed` training job's model can serve.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from heimdall.data.shards import MANIFEST, dataset_prefix, staging_in_use
from heimdall.errors import ConfigError, ConflictError, InputError, NotFoundError
from heimdall.extras import require
from heimdall.jobs import repository as jobs
from heimdall.jobs.runner import create_export_job, run_job, train_stages
from heimdall.jobs.specs import best_checkpoint, job_request, resolve_init_from
from heimdall.pipelines.context import Context
from heimdall.requests import EvaluateRequest, GenerateRequest, TrainRequest
from heimdall.storage.tables import TrainingJob

__all__ = [
    "TASK_NAMES",
    "CELERY_QUEUE",
    "Executor",
    "ThreadExecutor",
    "CeleryExecutor",
    "JobQueue",
    "run_job",
    "describe_job",
    "best_checkpoint",
    "job_request",
    "resolve_init_from",
]

log = logging.getLogger(__name__)

#: Celery task name of each job kind (the worker registers these names; nobody imports it).
TASK_NAMES: dict[str, str] = {
    "generate": "heimdall.generate",
    "train": "heimdall.train",
    "export": "heimdall.export",
    "evaluate": "heimdall.evaluate",
}
CELERY_QUEUE = "heimdall"
#: A running generate job this old without a live writer was abandoned by its worker (s).
ABANDONED_AFTER_S = 10.0

# --- executors ----------------------------------------------------------------------------


class Executor(Protocol):
    """Where queued jobs run."""

    mode: str

    def dispatch(self, kind: str, job_id: str) -> None:
        """Arrange for `run_job(job_id)` to happen (soon, somewhere)."""
        ...

    def health(self) -> dict[str, dict[str, Any]]:
        """`{"broker": {...}, "worker": {...}}`, each with a `status`."""
        ...

    def close(self) -> None:
        """Stop taking jobs; let a running one reach a safe point."""
        ...


class ThreadExecutor:
    """Embedded mode: one background thread of this process runs the jobs, in order."""

    mode = "embedded"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="heimdall-job")
        self._stop = threading.Event()
        self._pending: set[Future[str]] = set()
        self._lock = threading.Lock()

    def dispatch(self, kind: str, job_id: str) -> None:
        if self._stop.is_set():
            raise ConfigError("the job queue is shutting down")
        future = self._pool.submit(run_job, self.ctx, job_id, self._stop)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[str]) -> None:
        with self._lock:
            self._pending.discard(future)
        if not future.cancelled() and future.exception() is not None:
            # run_job records failures itself; reaching here means the database went away.
            log.error("embedded worker: %s", type(future.exception()).__name__)

    def health(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            pending = len(self._pending)
        worker = {"status": "stopping" if self._stop.is_set() else "ok", "mode": "embedded thread", "jobs_in_flight": pending}
        return {"broker": {"status": "not configured", "mode": "embedded"}, "worker": worker}

    def close(self) -> None:
        """Pause a running training job at its next epoch boundary; drop the queue (it stays in the DB)."""
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)


class CeleryExecutor:
    """Broker mode: the job id goes to Celery by task name; `heimdall worker` processes run it."""

    mode = "celery"

    def __init__(self, broker_url: str) -> None:
        require("server", "HEIMDALL_BROKER_URL (Celery job queue)")
        from celery import Celery

        self.app = Celery("heimdall-client", broker=broker_url, set_as_current=False)
        self.app.conf.update(
            task_default_queue=CELERY_QUEUE,
            task_serializer="json",
            accept_content=["json"],
            task_ignore_result=True,
            broker_connection_timeout=3,
            broker_connection_retry_on_startup=False,
            broker_connection_max_retries=1,
            task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1},
        )

    def dispatch(self, kind: str, job_id: str) -> None:
        self.app.send_task(TASK_NAMES[kind], args=[job_id], queue=CELERY_QUEUE)

    def health(self) -> dict[str, dict[str, Any]]:
        try:
            with self.app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=2)
        except Exception as exc:  # noqa: BLE001 - reported as the broker's status
            down = {"status": "unavailable", "detail": type(exc).__name__}
            return {"broker": down, "worker": {"status": "unknown", "detail": "broker unavailable"}}
        replies = self.app.control.inspect(timeout=1.0).ping() or {}
        worker = {"status": "ok" if replies else "unavailable", "workers": len(replies)}
        return {"broker": {"status": "ok", "mode": "celery"}, "worker": worker}

    def close(self) -> None:
        self.app.close()


class JobQueue:
    """Submit, steer and inspect jobs; one per API process (built by its app factory)."""

    def __init__(self, ctx: Context, executor: Executor) -> None:
        self.ctx = ctx
        self.executor = executor

    @classmethod
    def for_context(cls, ctx: Context) -> JobQueue:
        """Celery when `settings.broker_url` is set, else the embedded thread."""
        if ctx.settings.broker_url:
            return cls(ctx, CeleryExecutor(ctx.settings.broker_url))
        return cls(ctx, ThreadExecutor(ctx))

    @property
    def mode(self) -> str:
        return self.executor.mode

    def _dispatch(self, kind: str, job_id: str) -> str:
        try:
            self.executor.dispatch(kind, job_id)
        except Exception as exc:
            jobs.finish_job(self.ctx.db, job_id, "failed", error="could not hand the job to a worker")
            log.error("dispatch of job %s failed: %s", job_id, type(exc).__name__)
            raise ConfigError("the job queue is unavailable; try again later") from exc
        return job_id

    def submit_generate(self, spec: GenerateRequest) -> str:
        """Queue a dataset generation; returns the job id.

        At most `Settings.max_job_samples` samples: a queued job is work anyone who can
        reach the API can ask for, so it is bounded (the CLI's `generate` is not).
        """
        limit = self.ctx.settings.max_job_samples
        if spec.num_samples > limit:
            raise InputError(
                f"num_samples {spec.num_samples} is over this server's limit of {limit} per job "
                "(HEIMDALL_MAX_JOB_SAMPLES); generate larger datasets with the CLI"
            )
        spec.build()
        if self.ctx.store.exists(f"{dataset_prefix(spec.name)}/{MANIFEST}"):
            raise ConflictError(f"dataset {spec.name!r} already exists; delete it first or pick another name")
        for job in self._active(spec.name):
            if job.kind != "generate":
                continue
            if not self._abandoned(job):
                raise ConflictError(f"dataset {spec.name!r} is already being generated")
            # Its worker died (kill -9, lost machine): settle the row; the new job resumes.
            jobs.finish_job(self.ctx.db, job.id, "failed", error="interrupted: its worker stopped; resubmitted")
            log.warning("generate job %s was abandoned by its worker; marked failed", job.id)
        params = {"spec": spec.to_json(), "executor": self.mode}
        job_id = jobs.create_job(self.ctx.db, "generate", spec.name, params, total_epochs=spec.num_samples)
        return self._dispatch("generate", job_id)

    def submit_train(self, spec: TrainRequest) -> str:
        """Queue a training run (exported and registered before it completes, unless
        `spec.export` is False); returns the job id."""
        if spec.dataset is None:
            raise InputError("a training job needs a dataset")
        dataset_prefix(spec.dataset)
        if not self.ctx.store.exists(f"{dataset_prefix(spec.dataset)}/{MANIFEST}") and not any(
            j.kind == "generate" for j in self._active(spec.dataset)
        ):
            raise NotFoundError(f"dataset {spec.dataset!r} not found")
        job_request(self.ctx, spec).validate()
        params = {"spec": spec.to_json(), "executor": self.mode}
        job_id = jobs.create_job(self.ctx.db, "train", spec.dataset, params, total_epochs=spec.epochs)
        return self._dispatch("train", job_id)

    def submit_export(self, train_job_id: str) -> str:
        """Queue the export of a training job's best checkpoint; returns the export job id."""
        source = jobs.get_job(self.ctx.db, train_job_id)
        if source.kind != "train":
            raise ConflictError(f"job {train_job_id} is a {source.kind} job; only training jobs can be exported")
        if source.status in jobs.ACTIVE:
            raise ConflictError(f"job {train_job_id} is {source.status}; export it once it has stopped")
        best_checkpoint(source)
        return self._dispatch("export", create_export_job(self.ctx, train_job_id, executor=self.mode))

    def submit_evaluate(self, spec: EvaluateRequest) -> str:
        """Queue an evaluation of registry model `spec.model` on a dataset split; returns the job id."""
        spec.validate()
        if not self.ctx.store.exists(f"{dataset_prefix(spec.dataset)}/{MANIFEST}"):
            raise NotFoundError(f"dataset {spec.dataset!r} not found")
        params = {"spec": spec.to_json(), "executor": self.mode}
        job_id = jobs.create_job(self.ctx.db, "evaluate", spec.dataset, params, total_epochs=1)
        return self._dispatch("evaluate", job_id)

    def pause(self, job_id: str) -> None:
        """Ask a running training job to pause after its current epoch."""
        jobs.request_pause(self.ctx.db, job_id)

    def resume(self, job_id: str) -> None:
        """Queue a paused training job again, from its last checkpoint."""
        jobs.request_resume(self.ctx.db, job_id)
        self._dispatch("train", job_id)

    def cancel(self, job_id: str) -> None:
        """Cancel a job (a running training job stops after its current batch, a running
        generation after its current block of samples)."""
        jobs.request_cancel(self.ctx.db, job_id)

    def _abandoned(self, job: TrainingJob) -> bool:
        """A running generate job whose writer is gone (no process holds its staging lock).

        Assumes the workers stage under this HEIMDALL_HOME (one machine, or a shared
        filesystem). A job younger than `ABANDONED_AFTER_S` may not have taken its lock yet.
        """
        if job.status != "running" or job.started_at is None:
            return False
        started = job.started_at if job.started_at.tzinfo else job.started_at.replace(tzinfo=timezone.utc)
        if (datetime.now(timezone.utc) - started).total_seconds() < ABANDONED_AFTER_S:
            return False
        return not staging_in_use(self.ctx.staging_dir, job.dataset_name or "")

    def _active(self, dataset: str) -> list[TrainingJob]:
        return [
            j for status in jobs.ACTIVE for j in jobs.list_jobs(self.ctx.db, status=status, dataset_name=dataset)
        ]

    def recover(self) -> dict[str, int]:
        """Embedded start-up: settle jobs a previous server left behind, requeue queued ones.

        Only jobs this mode queued are touched (a CLI `heimdall train` on the same home is
        left alone). A training job that was running pauses (resume continues from its last
        checkpoint); any other running job fails.
        """
        if self.mode != "embedded":
            return {"paused": 0, "failed": 0, "requeued": 0}
        counts = {"paused": 0, "failed": 0, "requeued": 0}
        for job in jobs.list_jobs(self.ctx.db, status="running", limit=10_000):
            if (job.params or {}).get("executor") != "embedded":
                continue
            if job.kind == "train" and job.checkpoint_dir and (Path(job.checkpoint_dir) / "last.ckpt").is_file():
                jobs.finish_job(self.ctx.db, job.id, "paused")
                counts["paused"] += 1
            else:
                jobs.finish_job(self.ctx.db, job.id, "failed", error="interrupted: the server stopped while it ran")
                counts["failed"] += 1
        queued = jobs.list_jobs(self.ctx.db, status="queued", limit=10_000)
        for job in sorted(queued, key=lambda j: j.created_at):
            if (job.params or {}).get("executor") == "embedded":
                self.executor.dispatch(job.kind, job.id)
                counts["requeued"] += 1
        return counts

    def health(self) -> dict[str, dict[str, Any]]:
        return self.executor.health()

    def close(self) -> None:
        self.executor.close()


def describe_job(ctx: Context, job_id: str) -> dict[str, Any]:
    """A job as JSON-ready data: state, progress, latest epoch metrics, result, model."""
    job = jobs.get_job(ctx.db, job_id)
    params = dict(job.params or {})
    result = params.pop("result", None)
    export_job_id = params.pop("export_job_id", None)
    params.pop("executor", None)
    latest = jobs.latest_metrics(ctx.db, job_id)
    metrics = None
    if latest is not None:
        metrics = {
            c.name: getattr(latest, c.name)
            for c in latest.__table__.columns
            if c.name not in ("id", "job_id", "recorded_at")
        }
    records = jobs.job_model_records(ctx.db, job_id)
    model = None
    if records:
        record = records[-1]
        model = {"name": record.name, "version": record.version, "reference": f"models:/{record.name}/{record.version}"}
    total = int(job.total_epochs or 0)
    current = int(job.current_epoch or 0)
    stages = train_stages(ctx, job, result, export_job_id, current, total) if job.kind == "train" else None
    return {
        "job_id": job.id,
        "kind": job.kind,
        "status": job.status,
        "dataset": job.dataset_name,
        "params": params.get("spec", params),
        "progress": {
            "current": current,
            "total": total,
            "fraction": round(min(current / total, 1.0), 4) if total else None,
            "message": job.progress_message,
        },
        "metrics": metrics,
        "result": result,
        "model": model,
        "export_job_id": export_job_id,
        "stages": stages,
        "error": job.error,
        "pause_requested": bool(job.pause_requested),
        "cancel_requested": bool(job.cancel_requested),
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }
