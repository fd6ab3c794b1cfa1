"""Jobs: submit training, list, inspect, pause/resume/cancel, metrics, a live event stream."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from heimdall.jobs import repository as jobs
from heimdall.pipelines.dataset_admin import MAX_OFFSET
from heimdall.jobs.queue import describe_job
from heimdall.service.dependencies import ContextDep, JobId, QueueDep
from heimdall.service.schemas import JobAccepted, JobList, JobOut, TrainIn

__all__ = ["router", "accepted", "job_out"]

router = APIRouter(prefix="/v1/training/jobs", tags=["jobs"])

#: Longest an event stream stays open (a client reconnects for more).
MAX_STREAM_S = 3600.0
KEEPALIVE_S = 15.0


def status_url(job_id: str) -> str:
    return f"/v1/training/jobs/{job_id}"


def accepted(_request: Request, job_id: str, **extra: Any) -> JSONResponse:
    """The 202 answer to a submitted job."""
    body = JobAccepted(
        job_id=job_id, status="queued", status_url=status_url(job_id), events_url=f"{status_url(job_id)}/events"
    ).model_dump()
    return JSONResponse({**body, **extra}, status_code=202, headers={"Location": status_url(job_id)})


def job_out(ctx: Any, job_id: str) -> JobOut:
    return JobOut(**describe_job(ctx, job_id), status_url=status_url(job_id))


@router.post("", status_code=202, response_model=JobAccepted)
def submit_training(body: TrainIn, queue: QueueDep, request: Request) -> JSONResponse:
    """Queue a training run on a dataset; it completes once its model is exported, evaluated
    and registered (the job's `model` and `result.evaluation`), unless `export` is false."""
    return accepted(request, queue.submit_train(body.to_request()))


@router.get("", response_model=JobList)
def list_jobs(
    ctx: ContextDep,
    kind: Annotated[str | None, Query(pattern="^(generate|train|export|evaluate)$")] = None,
    status: Annotated[str | None, Query(pattern="^(queued|running|paused|completed|failed|cancelled)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> JobList:
    """Jobs, newest first."""
    rows = jobs.list_jobs(ctx.db, kind=kind, status=status, limit=limit, offset=offset)
    return JobList(jobs=[job_out(ctx, row.id) for row in rows])


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: JobId, ctx: ContextDep) -> JobOut:
    """State, progress (current/total/message), latest epoch metrics, result and model."""
    return job_out(ctx, str(job_id))


@router.post("/{job_id}/pause", status_code=202, response_model=JobOut)
def pause_job(job_id: JobId, ctx: ContextDep, queue: QueueDep) -> JobOut:
    """Pause a running training job at its next epoch boundary (after its checkpoint)."""
    queue.pause(str(job_id))
    return job_out(ctx, str(job_id))


@router.post("/{job_id}/resume", status_code=202, response_model=JobOut)
def resume_job(job_id: JobId, ctx: ContextDep, queue: QueueDep) -> JobOut:
    """Queue a paused training job again; it continues from its last checkpoint."""
    queue.resume(str(job_id))
    return job_out(ctx, str(job_id))


@router.post("/{job_id}/cancel", status_code=202, response_model=JobOut)
def cancel_job(job_id: JobId, ctx: ContextDep, queue: QueueDep) -> JobOut:
    """Cancel a job: at once when queued or paused, after the current batch when training."""
    queue.cancel(str(job_id))
    return job_out(ctx, str(job_id))


@router.post("/{job_id}/export", status_code=202, response_model=JobAccepted)
def export_job(job_id: JobId, queue: QueueDep, request: Request) -> JSONResponse:
    """Queue (again) the export of a stopped training job's best checkpoint."""
    return accepted(request, queue.submit_export(str(job_id)))


@router.get("/{job_id}/metrics")
def job_metrics(job_id: JobId, ctx: ContextDep) -> dict[str, Any]:
    """Every epoch's metrics (losses, validation errors in metres, coverage, learning rate)."""
    jobs.get_job(ctx.db, str(job_id))
    rows = jobs.job_metrics(ctx.db, str(job_id))
    skip = {"id", "job_id"}
    return {
        "job_id": str(job_id),
        "metrics": [{c.name: getattr(r, c.name) for c in r.__table__.columns if c.name not in skip} for r in rows],
    }


def _event(name: str, payload: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(jsonable_encoder(payload))}\n\n"


@router.get("/{job_id}/events")
async def job_events(
    job_id: JobId,
    ctx: ContextDep,
    max_duration_s: Annotated[float, Query(gt=0, le=MAX_STREAM_S)] = 600.0,
    interval_s: Annotated[float, Query(ge=0.1, le=30.0)] = 1.0,
) -> StreamingResponse:
    """Server-Sent Events: a `progress` event on every change, then `end` (completed, failed,
    cancelled or paused) or `timeout` after `max_duration_s`."""
    key = str(job_id)
    await run_in_threadpool(jobs.get_job, ctx.db, key)

    async def stream() -> AsyncIterator[str]:
        deadline = time.monotonic() + max_duration_s
        last: dict[str, Any] | None = None
        last_sent = time.monotonic()
        while True:
            view = await run_in_threadpool(describe_job, ctx, key)
            payload = {k: view[k] for k in ("job_id", "kind", "status", "progress", "metrics", "model", "error")}
            if payload != last:
                yield _event("progress", payload)
                last, last_sent = payload, time.monotonic()
            elif time.monotonic() - last_sent >= KEEPALIVE_S:
                yield ": keep-alive\n\n"
                last_sent = time.monotonic()
            if view["status"] in jobs.TERMINAL or view["status"] == "paused":
                yield _event("end", payload)
                return
            if time.monotonic() >= deadline:
                yield _event("timeout", payload)
                return
            await anyio.sleep(interval_s)

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
