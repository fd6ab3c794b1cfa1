"""Running a job, in whichever process the executor chose: claim the row, call one pipeline.

`run_job` records every outcome in the job row (`jobs/repository.py`): failures end as status
failed with a one-line, redacted error, never as a stack trace in a worker's log.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from heimdall.errors import HeimdallError, redact
from heimdall.jobs import repository as jobs
from heimdall.jobs.specs import GenerateSpec, TrainSpec, best_checkpoint
from heimdall.pipelines.context import Context
from heimdall.storage.tables import TrainingJob

__all__ = ["run_job", "create_export_job"]

log = logging.getLogger(__name__)

#: Seconds between a running generation's progress updates and cancel checks.
_POLL_S = 0.5


def _jsonable(value: Any) -> Any:
    """`value` with numpy scalars and paths turned into JSON types."""

    def default(obj: Any) -> Any:
        if hasattr(obj, "item"):
            return obj.item()
        return str(obj)

    return json.loads(json.dumps(value, default=default))


def _run_generate(ctx: Context, job: TrainingJob, stop: threading.Event | None) -> None:
    from heimdall.pipelines.datasets import generate

    spec = GenerateSpec(**job.params["spec"])
    scenario, network = spec.build()
    network_path = None
    if spec.network is not None or spec.frequency_hz is not None:
        network_path = ctx.settings.home / "jobs" / job.id / "network.yaml"
        network_path.parent.mkdir(parents=True, exist_ok=True)
        network.save(network_path)
    jobs.set_progress(ctx.db, job.id, 0, spec.num_samples, f"generating {spec.num_samples} samples")
    last_poll_s = time.monotonic()

    def progress(_stage: str, done: int, total: int | None, _note: str | None) -> None:
        # Between blocks of samples: record progress and look for a cancel request, at most
        # every _POLL_S (a block is ~1,000 samples, a fraction of a second).
        nonlocal last_poll_s
        if time.monotonic() - last_poll_s < _POLL_S:
            return
        last_poll_s = time.monotonic()
        jobs.set_progress(ctx.db, job.id, done, total or spec.num_samples, f"generated {done} of {total} samples")
        if jobs.control_request(ctx.db, job.id) == "cancel":
            raise jobs.JobCancelled(f"cancelled after {done} of {total} samples")

    result = generate(
        ctx,
        spec.name,
        spec.num_samples,
        seed=spec.seed,
        network_path=network_path,
        kind=spec.kind,
        split_mode=spec.split_mode,
        scenario=scenario,
        description=spec.description,
        resume=spec.resume,
        progress=progress,
    )
    jobs.set_result(ctx.db, job.id, _jsonable(dataclasses.asdict(result)))
    jobs.set_progress(ctx.db, job.id, result.samples, result.samples, f"generated {result.samples} samples")
    jobs.finish_job(ctx.db, job.id, "completed")


def _run_train(ctx: Context, job: TrainingJob, stop: threading.Event | None) -> None:
    from heimdall.pipelines.training import train

    spec = TrainSpec(**job.params["spec"])
    last = Path(job.checkpoint_dir) / "last.ckpt" if job.checkpoint_dir else None
    resuming = last is not None and last.is_file()
    request = spec.request(ctx, checkpoint=last if resuming else None)

    def poll() -> jobs.ControlRequest | None:
        # A server shutting down pauses its job (resumable) rather than losing it.
        if stop is not None and stop.is_set():
            return "pause"
        return jobs.control_request(ctx.db, job.id)

    result = train(ctx, request, job_id=job.id, poll=poll)
    if result.status != "completed":
        return
    jobs.set_result(
        ctx.db,
        job.id,
        {
            "checkpoint": result.checkpoint,
            "best_checkpoint": result.best_checkpoint,
            "epochs_run": result.epochs_run,
            "mlflow_run_id": result.mlflow_run_id,
        },
    )
    if spec.export:
        export_id = create_export_job(ctx, job.id, executor=(job.params or {}).get("executor", "inline"))
        run_job(ctx, export_id)


def create_export_job(ctx: Context, train_job_id: str, executor: str) -> str:
    source = jobs.get_job(ctx.db, train_job_id)
    export_id = jobs.create_job(
        ctx.db, "export", source.dataset_name, {"spec": {"source_job_id": train_job_id}, "executor": executor}, total_epochs=1
    )
    jobs.merge_params(ctx.db, train_job_id, {"export_job_id": export_id})
    return export_id


def _run_export(ctx: Context, job: TrainingJob, stop: threading.Event | None) -> None:
    from heimdall.pipelines.model_export import export

    source = jobs.get_job(ctx.db, job.params["spec"]["source_job_id"])
    checkpoint = best_checkpoint(source)
    jobs.set_progress(ctx.db, job.id, 0, 1, "exporting to ONNX, evaluating on the test split, registering")
    result = export(ctx, checkpoint)
    summary = {k: v for k, v in result.evaluation.items() if not isinstance(v, dict)}
    jobs.set_result(
        ctx.db,
        job.id,
        _jsonable(
            {
                "model": f"models:/{ctx.settings.registered_model_name}/{result.version}",
                "registered": result.registered,
                "version": result.version,
                "max_abs_diff": result.max_abs_diff,
                "checkpoint": str(checkpoint),
                "evaluation": summary,
            }
        ),
    )
    jobs.set_progress(ctx.db, job.id, 1, 1, f"registered {result.registered}")
    jobs.finish_job(ctx.db, job.id, "completed")


def _run_evaluate(ctx: Context, job: TrainingJob, stop: threading.Event | None) -> None:
    from heimdall.pipelines.models import evaluate

    spec = job.params["spec"]
    jobs.set_progress(ctx.db, job.id, 0, 1, f"evaluating {spec['model']} on {spec['dataset']}/{spec['split']}")
    result = evaluate(ctx, spec["model"], spec["dataset"], spec["split"])
    jobs.set_result(ctx.db, job.id, _jsonable(result))
    jobs.set_progress(ctx.db, job.id, 1, 1, f"evaluated on {result.get('n', '?')} samples")
    jobs.finish_job(ctx.db, job.id, "completed")


_RUNNERS = {"generate": _run_generate, "train": _run_train, "export": _run_export, "evaluate": _run_evaluate}


def run_job(ctx: Context, job_id: str, stop: threading.Event | None = None, reclaim: bool = False) -> str:
    """Run queued job `job_id` here and now; return the status it ended in.

    Failures end in the job row (status failed, a one-line error) and one log line; they are
    not raised, so no worker prints a stack trace. `reclaim` lets a redelivered message of an
    idempotent job take over a row left running by a worker that died.
    """
    job = jobs.get_job(ctx.db, job_id)
    runner = _RUNNERS.get(job.kind)
    if runner is None:
        jobs.finish_job(ctx.db, job_id, "failed", error=f"unknown job kind {job.kind!r}")
        return "failed"
    if not jobs.claim_job(ctx.db, job_id, allow_running=reclaim):
        log.info("job %s is %s; not running it", job_id, jobs.get_job(ctx.db, job_id).status)
        return jobs.get_job(ctx.db, job_id).status
    job = jobs.get_job(ctx.db, job_id)
    try:
        runner(ctx, job, stop)
    except jobs.JobCancelled as exc:
        log.info("job %s (%s) %s", job_id, job.kind, exc)
        jobs.finish_job(ctx.db, job_id, "cancelled", error=None)
    except HeimdallError as exc:
        message = redact(str(exc), ctx.settings)
        log.warning("job %s (%s) failed: %s", job_id, job.kind, message)
        jobs.finish_job(ctx.db, job_id, "failed", error=message)
    except Exception as exc:  # noqa: BLE001 - recorded in the job row, not lost
        # The type only: messages of unexpected errors may carry paths or URLs with secrets.
        log.error("job %s (%s) failed with an internal error: %s", job_id, job.kind, type(exc).__name__)
        jobs.finish_job(ctx.db, job_id, "failed", error=f"internal error ({type(exc).__name__})")
    return jobs.get_job(ctx.db, job_id).status
