"""Registered models: list, show, promote (alias), evaluate (a job)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from heimdall.serving.models import DEFAULT_ALIAS, list_models, model_show, promote_model
from heimdall.service.dependencies import ContextDep, LocalizersDep, ModelName, ModelVersion, QueueDep
from heimdall.service.routes.jobs import accepted
from heimdall.service.schemas import EvaluateIn, JobAccepted, PromoteIn

__all__ = ["router"]

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("")
def models(ctx: ContextDep) -> dict[str, Any]:
    """Every exported model version, with registry aliases and test metrics."""
    return {"models": list_models(ctx)}


@router.get("/{name}/{version}")
def model(name: ModelName, version: ModelVersion, ctx: ContextDep) -> dict[str, Any]:
    """One exported model version."""
    return model_show(ctx, name, version)


@router.post("/{name}/{version}/promote")
def promote(
    name: ModelName, version: ModelVersion, ctx: ContextDep, localizers: LocalizersDep, body: PromoteIn | None = None
) -> dict[str, Any]:
    """Point an alias (default `production`, the model `POST /v1/localize` serves) at this version."""
    alias = (body or PromoteIn()).alias
    if alias == DEFAULT_ALIAS:
        # Loaded before the alias moves: the first request after the switch finds it ready,
        # and a model that cannot load is refused here (503) instead of failing requests.
        localizers.preload(name, version)
    result = promote_model(ctx, name, version, alias)
    localizers.forget_aliases()
    return result


@router.post("/{name}/{version}/evaluate", status_code=202, response_model=JobAccepted)
def evaluate(name: ModelName, version: ModelVersion, body: EvaluateIn, ctx: ContextDep, queue: QueueDep, request: Request) -> JSONResponse:
    """Queue an evaluation of this version on a dataset split (result in the job's `result`)."""
    model_show(ctx, name, version)
    return accepted(request, queue.submit_evaluate(body.to_request(f"models:/{name}/{version}")))
