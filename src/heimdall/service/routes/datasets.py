"""Synthetic datasets: generate (a job), list, show, page through samples, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from heimdall import pipelines
from heimdall.pipelines.dataset_admin import MAX_OFFSET, MAX_PAGE, dataset_samples, delete_dataset
from heimdall.service.dependencies import ContextDep, DatasetName, QueueDep
from heimdall.service.routes.jobs import accepted
from heimdall.service.schemas import GenerateIn, JobAccepted

__all__ = ["router"]

router = APIRouter(prefix="/v1/training/synthetic", tags=["datasets"])


@router.post("/generate", status_code=202, response_model=JobAccepted)
def generate(body: GenerateIn, queue: QueueDep, request: Request) -> JSONResponse:
    """Queue the simulation of a dataset; poll the returned status URL."""
    return accepted(request, queue.submit_generate(body.to_request()))


@router.get("/datasets")
def list_datasets(ctx: ContextDep) -> dict[str, Any]:
    """Every catalogued dataset."""
    return {"datasets": pipelines.datasets_list(ctx)}


@router.get("/datasets/{name}")
def show_dataset(name: DatasetName, ctx: ContextDep) -> dict[str, Any]:
    """A dataset's manifest (splits, scenario, network) and where it is stored."""
    return pipelines.dataset_show(ctx, name)


@router.get("/datasets/{name}/samples")
def list_samples(
    name: DatasetName,
    ctx: ContextDep,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> dict[str, Any]:
    """Per-sample rows (`synthetic_training_samples`): split, true position, power, receivers heard."""
    return dataset_samples(ctx, name, offset, limit)


@router.delete("/datasets/{name}")
def remove_dataset(name: DatasetName, ctx: ContextDep) -> dict[str, Any]:
    """Delete a dataset's files and rows (refused while a job uses it)."""
    return delete_dataset(ctx, name)
