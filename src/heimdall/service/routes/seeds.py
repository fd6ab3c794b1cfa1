"""The seed documents' training endpoints, kept as aliases of the jobs API."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from heimdall.service.dependencies import ContextDep, JobId, QueueDep
from heimdall.service.routes.jobs import accepted, job_out
from heimdall.service.schemas import TrainIn

__all__ = ["router"]

router = APIRouter(tags=["seed aliases"])


@router.post("/train", status_code=202)
def train(body: TrainIn, queue: QueueDep, request: Request) -> JSONResponse:
    """Alias of `POST /v1/training/jobs`; also answers the seeds' `task_id`."""
    job_id = queue.submit_train(body.to_request())
    return accepted(request, job_id, task_id=job_id)


@router.get("/train/{task_id}")
def train_status(task_id: JobId, ctx: ContextDep) -> dict:
    """Alias of `GET /v1/training/jobs/{id}`, with the seeds' `task_id`."""
    view = job_out(ctx, str(task_id)).model_dump(mode="json")
    return {"task_id": str(task_id), **view}
