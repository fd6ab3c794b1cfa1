"""Running a job, in whichever process the executor chose: claim the row, call one pipeline.

`run_job` records every outcome in the job row (`jobs/repository.py`): failures end as status
failed with a one-line, redacted error, never as a stack trace in a worker's log. Each job
reads its request (`heimdall.requests`) back from its row as it was stored.

A training job is done when its model can serve: after the epochs, export (ONNX bundle,
evaluation) and registration run as its second stage, an export job of their own that the
training job waits for, and the training job completes with the registered model and its
evaluation in its result.
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
from heimdall.jobs.specs import best_checkpoint, job_request
from heimdall.pipelines.context import Context
from heimdall.requests import EvaluateRequest, ExportRequest, GenerateRequest, TrainRequest
from heimdall.storage.tables import TrainingJob

__all__ = ["run_job", "create_export_job", "train_stages"]

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

    # Queued generations resume what an interrupted run staged (rows written before the
    # request carried `resume` say nothing of it).
    request = GenerateRequest.from_json({"resume": True, **job.params["spec"]})
    scenario, network = request.build()
    jobs.set_progress(ctx.db, job.id, 0, request.num_samples, f"generating {request.num_samples} samples")
    last_poll_s = time.monotonic()

    def progress(_stage: str, done: int, total: int | None, _note: str | None) -> None:
        # Between blocks of samples: record progress and look for a cancel request, at most
        # every _POLL_S (a block is ~1,000 samples, a fraction of a second).
        nonlocal last_poll_s
        if time.monotonic() - last_poll_s < _POLL_S:
            return
        last_poll_s = time.monotonic()
        jobs.set_progress(ctx.db, job.id, done, total or request.num_samples, f"generated {done} of {total} samples")
        if jobs.control_request(ctx.db, job.id) == "cancel":
            raise jobs.JobCancelled(f"cancelled after {done} of {total} samples")

    result = generate(
        ctx,
        request.name,
        request.num_samples,
        seed=request.seed,
        network=network,
        kind=request.kind,
        split_mode=request.split_mode,
        scenario=scenario,
        description=request.description,
        resume=request.resume,
        progress=progress,
    )
    jobs.set_result(ctx.db, job.id, _jsonable(dataclasses.asdict(result)))
    jobs.set_progress(ctx.db, job.id, result.samples, result.samples, f"generated {result.samples} samples")
    jobs.finish_job(ctx.db, job.id, "completed")


def _run_train(ctx: Context, job: TrainingJob, stop: threading.Event | None) -> None:
    from heimdall.pipelines.training import train

    request = TrainRequest.from_job_params(job.params)
    executor = (job.params or {}).get("executor", "inline")
    trained = (job.params or {}).get("result") or {}
    if request.export and trained.get("best_checkpoint"):
        # Its epochs were done when its worker stopped (a server shutting down pauses a
        # job in any stage): only the export stage is left.
        _export_stage(ctx, job.id, trained, executor=executor)
        return
    last = Path(job.checkpoint_dir) / "last.ckpt" if job.checkpoint_dir else None
    resuming = last is not None and last.is_file()
    run = job_request(ctx, request, checkpoint=last if resuming else None)

    def poll() -> jobs.ControlRequest | None:
        # A server shutting down pauses its job (resumable) rather than losing it.
        if stop is not None and stop.is_set():
            return "pause"
        return jobs.control_request(ctx.db, job.id)

    result = train(ctx, run, job_id=job.id, poll=poll, finish=not request.export)
    if result.status != "completed":
        return
    trained = {
        "checkpoint": result.checkpoint,
        "best_checkpoint": result.best_checkpoint,
        "epochs_run": result.epochs_run,
        "mlflow_run_id": result.mlflow_run_id,
        "model_kind": result.model_kind,
    }
    if result.fit_summary:
        trained["fit"] = result.fit_summary
    jobs.set_result(ctx.db, job.id, trained)
    if request.export:
        _export_stage(ctx, job.id, trained, executor=executor)


def _export_stage(ctx: Context, job_id: str, trained: dict[str, Any], executor: str) -> None:
    """The training job's second stage: export, evaluate and register its best checkpoint
    (an export job with its own progress), then complete with the model it registered."""
    row = jobs.get_job(ctx.db, job_id)
    export_id = create_export_job(ctx, job_id, executor=executor)
    jobs.set_progress(ctx.db, job_id, int(row.current_epoch or 0), None,
                      "exporting: ONNX, evaluation on the test split, registry")
    status = run_job(ctx, export_id)
    exported = jobs.get_job(ctx.db, export_id)
    if status != "completed":
        jobs.finish_job(ctx.db, job_id, "failed", error=f"export failed: {exported.error or status}")
        return
    stage = (exported.params or {}).get("result") or {}
    jobs.set_result(ctx.db, job_id, {**trained, **{k: stage[k] for k in ("model", "registered", "version", "evaluation")}})
    jobs.set_progress(ctx.db, job_id, int(row.current_epoch or 0), None, f"registered {stage['model']}")
    jobs.finish_job(ctx.db, job_id, "completed")


def train_stages(
    ctx: Context, job: TrainingJob, result: dict[str, Any] | None, export_job_id: str | None, current: int, total: int
) -> dict[str, Any]:
    """A training job's stages, each with its own status and progress: the epochs, then the
    export (ONNX, evaluation, registry) it runs as an export job."""
    trained = bool(result and result.get("best_checkpoint"))
    stages: dict[str, Any] = {
        "train": {"status": "completed" if trained else job.status, "current": current, "total": total}
    }
    if export_job_id:
        export = jobs.get_job(ctx.db, export_job_id)
        stages["export"] = {
            "status": export.status,
            "job_id": export_job_id,
            "current": int(export.current_epoch or 0),
            "total": int(export.total_epochs or 0),
            "message": export.progress_message,
        }
    return stages


def create_export_job(ctx: Context, train_job_id: str, executor: str) -> str:
    source = jobs.get_job(ctx.db, train_job_id)
    spec = ExportRequest(source_job_id=train_job_id).to_json()
    export_id = jobs.create_job(ctx.db, "export", source.dataset_name, {"spec": spec, "executor": executor}, total_epochs=1)
    jobs.merge_params(ctx.db, train_job_id, {"export_job_id": export_id})
    return export_id


def _run_export(ctx: Context, job: TrainingJob, stop: threading.Event | None) -> None:
    from heimdall.pipelines.model_export import export

    request = ExportRequest.from_json(job.params["spec"])
    request.validate()
    checkpoint = request.checkpoint or best_checkpoint(jobs.get_job(ctx.db, str(request.source_job_id)))
    jobs.set_progress(ctx.db, job.id, 0, 1, "exporting to ONNX, evaluating on the test split, registering")
    result = export(ctx, checkpoint, request.version, request.quantize)
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

    request = EvaluateRequest.from_json(job.params["spec"])
    jobs.set_progress(ctx.db, job.id, 0, 1, f"evaluating {request.model} on {request.dataset}/{request.split}")
    result = evaluate(ctx, request.model, request.dataset, request.split, variant=request.variant)
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
