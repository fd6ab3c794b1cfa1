"""What routes receive: settings, context, job queue and model cache from the app's state.

All of it is built by `create_app`, never at import time.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path, Request

from heimdall.pipelines.context import Context
from heimdall.jobs.queue import JobQueue
from heimdall.serving.rollout import Rollout
from heimdall.serving.models import LocalizerCache
from heimdall.service.metrics import ServiceMetrics
from heimdall.service.schemas import NAME_PATTERN
from heimdall.settings import Settings

__all__ = [
    "SettingsDep",
    "ContextDep",
    "QueueDep",
    "LocalizersDep",
    "RolloutDep",
    "MetricsDep",
    "DatasetName",
    "ModelName",
    "ModelVersion",
    "JobId",
]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_context(request: Request) -> Context:
    return request.app.state.context


def get_queue(request: Request) -> JobQueue:
    return request.app.state.queue


def get_localizers(request: Request) -> LocalizerCache:
    return request.app.state.localizers


def get_rollout(request: Request) -> Rollout:
    return request.app.state.rollout


def get_metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
ContextDep = Annotated[Context, Depends(get_context)]
QueueDep = Annotated[JobQueue, Depends(get_queue)]
LocalizersDep = Annotated[LocalizerCache, Depends(get_localizers)]
RolloutDep = Annotated[Rollout, Depends(get_rollout)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]

DatasetName = Annotated[str, Path(pattern=NAME_PATTERN, description="Dataset name: [a-z0-9][a-z0-9_-]{0,63}")]
ModelName = Annotated[str, Path(pattern=NAME_PATTERN, description="Registered model name")]
ModelVersion = Annotated[int, Path(ge=1, le=999_999_999)]
JobId = Annotated[uuid.UUID, Path(description="Job id (UUID)")]
