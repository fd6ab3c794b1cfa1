"""`POST /v1/localize`: one transmission -> position and uncertainty ellipse."""

from __future__ import annotations

from fastapi import APIRouter

from heimdall.pipelines.serving import MeasurementRow, localize_one, measurement_table
from heimdall.service.dependencies import LocalizersDep
from heimdall.service.schemas import LocalizeIn, LocalizeOut

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["localize"])


@router.post("/localize", response_model=LocalizeOut)
def localize(body: LocalizeIn, localizers: LocalizersDep) -> LocalizeOut:
    """Locate the transmitter from what each receiver heard (rss_dbm null = heard nothing).

    Runs the exported ONNX model `model` (default: `models:/heimdall-localizer@production`,
    or the newest version while none is promoted), loaded once and kept in memory.
    """
    table = measurement_table([MeasurementRow(**row.model_dump()) for row in body.measurements])
    localizer, reference = localizers.get(body.model)
    return LocalizeOut(**localize_one(localizer, table, reference))
