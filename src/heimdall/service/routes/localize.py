"""`POST /v1/localize`: one transmission -> position and uncertainty ellipse."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request

from heimdall.data.measurements import MeasurementTable
from heimdall.serving.rollout import Answer, Rollout
from heimdall.service.dependencies import MetricsDep, RolloutDep
from heimdall.service.metrics import MODEL_STATE_KEY, ServiceMetrics
from heimdall.service.schemas import LocalizeIn, LocalizeOut

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["localize"])


def _shadow(rollout: Rollout, metrics: ServiceMetrics, table: MeasurementTable, answer: Answer) -> None:
    metrics.observe_shadow(rollout.shadow(table, answer))


@router.post("/localize", response_model=LocalizeOut)
def localize(
    body: LocalizeIn, rollout: RolloutDep, metrics: MetricsDep, request: Request, background: BackgroundTasks
) -> LocalizeOut:
    """Locate the transmitter from what each receiver heard (rss_dbm null = heard nothing).

    Runs the exported ONNX model `model` (default: `models:/heimdall-localizer@production`,
    or the newest version while none is promoted; a configured canary answers its share of
    these), loaded once and kept in memory. `model` in the response names the one that
    answered. A configured shadow model runs after the response, for logs and metrics only.
    """
    table = body.table()
    answer = rollout.localize(body.model, body.model_dump_json(), table)
    setattr(request.state, MODEL_STATE_KEY, answer.body["model"])
    metrics.observe_answer(answer)
    if rollout.wants_shadow(answer):
        background.add_task(_shadow, rollout, metrics, table, answer)
    return LocalizeOut(**answer.body)
