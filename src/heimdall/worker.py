"""Celery adapter: `heimdall worker` (or `celery -A heimdall.worker:celery_app worker`).

Each task unpacks a job id and calls `jobs.queue.run_job`; the job's state, progress and
errors live in the database, so the API answers status questions without a result backend.
The broker URL comes from `Settings`, read when the worker starts (the configuration is
lazy: importing this module reads no environment).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, Task

from heimdall.errors import ConfigError
from heimdall.pipelines.context import Context, open_context
from heimdall.jobs.queue import CELERY_QUEUE, TASK_NAMES, run_job
from heimdall.settings import Settings

__all__ = ["celery_app", "main"]

_state: dict[str, Any] = {}


def _settings() -> Settings:
    if "settings" not in _state:
        _state["settings"] = Settings()
    return _state["settings"]


def _context() -> Context:
    """One context per worker process (built in the process that runs tasks, after any fork)."""
    if _state.get("pid") != os.getpid():
        _state["context"] = open_context(_settings())
        _state["pid"] = os.getpid()
    return _state["context"]


def _configuration() -> dict[str, Any]:
    settings = _settings()
    if not settings.broker_url:
        raise ConfigError(
            "HEIMDALL_BROKER_URL is not set: a worker needs a broker (without one, `heimdall serve` runs jobs itself)"
        )
    return {
        "broker_url": settings.broker_url,
        "task_default_queue": CELERY_QUEUE,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        # A job's message is acknowledged when the job ends, and one job at a time per process:
        # training holds a core (or a GPU) for minutes.
        "task_acks_late": True,
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
    }


celery_app = Celery("heimdall", set_as_current=False)
celery_app.add_defaults(_configuration)


@celery_app.task(name=TASK_NAMES["generate"], acks_late=True)
def generate_task(job_id: str) -> str:
    """Simulate a dataset (not retried: a half-published name would collide)."""
    return run_job(_context(), job_id)


@celery_app.task(name=TASK_NAMES["train"], acks_late=True)
def train_task(job_id: str) -> str:
    """Train, or resume a paused job from its last checkpoint; then export it."""
    return run_job(_context(), job_id)


@celery_app.task(name=TASK_NAMES["export"], acks_late=True)
def export_task(job_id: str) -> str:
    """Export a training job's best checkpoint (not retried: it registers a new version)."""
    return run_job(_context(), job_id)


@celery_app.task(name=TASK_NAMES["evaluate"], bind=True, acks_late=True, reject_on_worker_lost=True)
def evaluate_task(self: Task, job_id: str) -> str:
    """Evaluate a model; read-only, so a message redelivered after a worker died runs again."""
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    return run_job(_context(), job_id, reclaim=redelivered)


def main(concurrency: int = 1, loglevel: str | None = None) -> None:
    """Run a worker on the configured broker until interrupted (`heimdall worker`)."""
    from heimdall.logging_setup import configure_logging

    settings = _settings()
    configure_logging(settings.log_level)
    _configuration()
    celery_app.worker_main(
        [
            "worker",
            f"--loglevel={(loglevel or settings.log_level).upper()}",
            f"--concurrency={concurrency}",
            f"--queues={CELERY_QUEUE}",
            # A node name per process: two workers on one machine must not share celery@host.
            f"--hostname=heimdall-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
        ]
    )
