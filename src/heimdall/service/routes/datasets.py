"""Synthetic datasets: generate (a job), list, show, page through samples, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from heimdall import pipelines
from heimdall.pipelines.dataset_admin import MAX_OFFSET, MAX_PAGE, dataset_samples, delete_dataset
from heimdall.jobs.queue import GenerateSpec
from heimdall.service.dependencies import ContextDep, DatasetName, QueueDep
from heimdall.service.routes.jobs import accepted
from heimdall.service.schemas import GenerateIn, JobAccepted

__all__ = ["router"]

router = APIRouter(prefix="/v1/training/synthetic", tags=["datasets"])


def _spec(body: GenerateIn) -> GenerateSpec:
    scenario: dict[str, Any] = {}
    if body.tx_power_dbm is not None:
        low, high = body.tx_power_dbm if isinstance(body.tx_power_dbm, list) else (body.tx_power_dbm,) * 2
        scenario.update(tx_power_min_dbm=low, tx_power_max_dbm=high)
    if body.min_snr_db is not None:
        scenario["min_snr_db"] = body.min_snr_db
    if body.min_receivers is not None:
        scenario["min_receivers"] = body.min_receivers
    network = None
    if body.network is not None:
        network = body.network.model_dump(exclude_none=True)
        for receiver in network["receivers"]:
            receiver.setdefault("name", receiver["receiver_id"])
    return GenerateSpec(
        name=body.name,
        num_samples=body.num_samples,
        seed=body.seed,
        description=body.description,
        kind=body.kind,
        split_mode=body.split_mode,
        scenario=scenario,
        network=network,
        frequency_hz=body.frequency_mhz * 1e6 if body.frequency_mhz is not None else None,
    )


@router.post("/generate", status_code=202, response_model=JobAccepted)
def generate(body: GenerateIn, queue: QueueDep, request: Request) -> JSONResponse:
    """Queue the simulation of a dataset; poll the returned status URL."""
    return accepted(request, queue.submit_generate(_spec(body)))


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
